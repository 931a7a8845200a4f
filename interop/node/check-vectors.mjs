// Both directions against docs/test-vectors/chain.json:
//  1. sign the drafts here and compare every byte with what Python produced;
//  2. verify the Python-signed events (signature, digest, chain) here.
// Usage: node check-vectors.mjs VECTORS.json   (exit 0 and prints a JSON summary when all agree)
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { digest, privateKeyFromSeed, publicKeyFromText, keyId, signDraft, signatureValid, signingInput } from "./sgledger.mjs";

const vectors = JSON.parse(readFileSync(process.argv[2], "utf8"));
const privateKey = privateKeyFromSeed(createHash("sha256").update(vectors.key.seed_text, "utf8").digest());
const publicKey = publicKeyFromText(vectors.key.public_key);
const failures = [];
const expect = (what, got, want) => { if (got !== want) failures.push(`${what}: got ${got}, want ${want}`); };

expect("kid", keyId(vectors.key.public_key), vectors.key.kid);
let head = { sequence: 0, digest: "" };
for (const [i, step] of vectors.chain.entries()) {
  const mine = signDraft(step.draft, { source: vectors.agency, privateKey, head });
  expect(`#${i} signing input`, signingInput(mine).toString("utf8"), step.signing_input);
  expect(`#${i} signature`, mine.signature, step.signature);
  expect(`#${i} digest`, digest(mine), step.digest);
  expect(`#${i} verifies (Python-signed)`, signatureValid(step.event, publicKey), true);
  expect(`#${i} digest (Python-signed)`, digest(step.event), step.digest);
  expect(`#${i} prevhash`, step.event.prevhash, head.digest);
  const tampered = { ...step.event, subject: "C-2" };
  expect(`#${i} tampered event refused`, signatureValid(tampered, publicKey), false);
  head = { sequence: mine.sequence, digest: digest(mine) };
}
console.log(JSON.stringify({ events: vectors.chain.length, failures }));
process.exit(failures.length ? 1 : 0);
