// Sign the vector drafts as the agency and publish them through the gateway's signed-event
// endpoint (CloudEvents batch), continuing the chain from GET /v1/chain.
// Usage: node publish.mjs VECTORS.json GATEWAY_URL   (token in SGLEDGER_GATEWAY_TOKEN)
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { privateKeyFromSeed, signDraft, digest } from "./sgledger.mjs";

const [vectorsPath, gateway] = process.argv.slice(2);
const vectors = JSON.parse(readFileSync(vectorsPath, "utf8"));
const privateKey = privateKeyFromSeed(createHash("sha256").update(vectors.key.seed_text, "utf8").digest());
const headers = { Authorization: `Bearer ${process.env.SGLEDGER_GATEWAY_TOKEN}` };

let head = await (await fetch(`${gateway}/v1/chain`, { headers })).json();
const events = vectors.chain.map((step) => {
  const event = signDraft(step.draft, { source: vectors.agency, privateKey, head });
  head = { sequence: event.sequence, digest: digest(event) };
  return event;
});
const answer = await fetch(`${gateway}/v1/events/batch`, {
  method: "POST",
  headers: { ...headers, "Content-Type": "application/cloudevents-batch+json", "Idempotency-Key": "node-vectors-1" },
  body: JSON.stringify(events),
});
console.log(JSON.stringify({ status: answer.status, body: await answer.json() }));
process.exit(answer.status === 202 ? 0 : 1);
