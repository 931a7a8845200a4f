"""The auditor: checks the whole history from the partnership root key alone, proves inclusion
and consistency against signed tree heads, rebuilds views as of any time and exports the
multi-agency chronology a review author needs."""
