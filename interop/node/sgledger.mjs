// Signing and verifying safeguarding-ledger events from docs/signing.md alone:
// RFC 8785 (canonicalize), SHA-256 and Ed25519 (node:crypto). No code shared with Python.
import { createHash, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import canonicalize from "canonicalize";

const b64url = (bytes) => Buffer.from(bytes).toString("base64url");

// The signature covers every attribute except `signature`, in RFC 8785 form.
export function signingInput(event) {
  const { signature, ...rest } = event;
  return Buffer.from(canonicalize(rest), "utf8");
}

// SHA-256 (hex) of the whole signed event in RFC 8785 form: the next event's prevhash.
export function digest(event) {
  return createHash("sha256").update(Buffer.from(canonicalize(event), "utf8")).digest("hex");
}

// An Ed25519 private key from its raw 32-byte seed (PKCS#8 DER = fixed prefix + seed).
export function privateKeyFromSeed(seed) {
  const prefix = Buffer.from("302e020100300506032b657004220420", "hex");
  return createPrivateKey({ key: Buffer.concat([prefix, seed]), format: "der", type: "pkcs8" });
}

export function publicKeyFromText(text) {
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: text }, format: "jwk" });
}

export function publicKeyText(privateKey) {
  return createPublicKey(privateKey).export({ format: "jwk" }).x;
}

// kid = first 128 bits of SHA-256 over the raw public key, hex.
export function keyId(publicKeyB64url) {
  return createHash("sha256").update(Buffer.from(publicKeyB64url, "base64url")).digest("hex").slice(0, 32);
}

// The next event of a chain from a draft: sequence and prevhash follow `head`.
export function signDraft(draft, { source, privateKey, head }) {
  const event = {
    specversion: "1.0",
    id: draft.id,
    source,
    type: draft.type,
    subject: draft.subject,
    time: draft.time,
    recordedtime: draft.recordedtime,
    sequence: head.sequence + 1,
    prevhash: head.digest,
    kid: keyId(publicKeyText(privateKey)),
    data: draft.data,
  };
  event.signature = b64url(sign(null, signingInput(event), privateKey));
  return event;
}

export function signatureValid(event, publicKey) {
  return verify(null, signingInput(event), publicKey, Buffer.from(event.signature, "base64url"));
}
