package sgledger;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.PKCS8EncodedKeySpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import org.erdtman.jcs.JsonCanonicalizer;

/**
 * Both directions against docs/test-vectors/chain.json: signs the drafts and compares every byte
 * with what Python produced, and verifies the Python-signed events (signature, digest, chain).
 * Usage: java sgledger.CheckVectors chain.json (exit 0 when all agree).
 */
public final class CheckVectors {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final HexFormat HEX = HexFormat.of();
  // DER prefixes that wrap a raw 32-byte Ed25519 key as PKCS#8 (private) and X.509 (public).
  private static final byte[] PKCS8 = HEX.parseHex("302e020100300506032b657004220420");
  private static final byte[] X509 = HEX.parseHex("302a300506032b6570032100");

  static byte[] canonical(JsonNode value) throws Exception {
    return new JsonCanonicalizer(JSON.writeValueAsString(value)).getEncodedUTF8();
  }

  static byte[] signingInput(ObjectNode event) throws Exception {
    ObjectNode unsigned = event.deepCopy();
    unsigned.remove("signature");
    return canonical(unsigned);
  }

  static String sha256Hex(byte[] bytes) throws Exception {
    return HEX.formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
  }

  static byte[] concat(byte[] a, byte[] b) {
    byte[] out = new byte[a.length + b.length];
    System.arraycopy(a, 0, out, 0, a.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }

  public static void main(String[] args) throws Exception {
    JsonNode vectors = JSON.readTree(new File(args[0]));
    KeyFactory keys = KeyFactory.getInstance("Ed25519");
    byte[] seed = MessageDigest.getInstance("SHA-256")
        .digest(vectors.at("/key/seed_text").asText().getBytes(StandardCharsets.UTF_8));
    PrivateKey privateKey = keys.generatePrivate(new PKCS8EncodedKeySpec(concat(PKCS8, seed)));
    byte[] rawPublic = Base64.getUrlDecoder().decode(vectors.at("/key/public_key").asText());
    PublicKey publicKey = keys.generatePublic(new X509EncodedKeySpec(concat(X509, rawPublic)));
    String kid = sha256Hex(rawPublic).substring(0, 32);
    List<String> failures = new ArrayList<>();
    if (!kid.equals(vectors.at("/key/kid").asText())) failures.add("kid " + kid);

    int sequence = 0;
    String prevhash = "";
    for (JsonNode step : vectors.get("chain")) {
      JsonNode draft = step.get("draft");
      ObjectNode event = JSON.createObjectNode();
      event.put("specversion", "1.0");
      event.set("id", draft.get("id"));
      event.put("source", vectors.get("agency").asText());
      event.set("type", draft.get("type"));
      event.set("subject", draft.get("subject"));
      event.set("time", draft.get("time"));
      event.set("recordedtime", draft.get("recordedtime"));
      event.put("sequence", ++sequence);
      event.put("prevhash", prevhash);
      event.put("kid", kid);
      event.set("data", draft.get("data"));
      byte[] input = signingInput(event);
      Signature signer = Signature.getInstance("Ed25519");
      signer.initSign(privateKey);
      signer.update(input);
      event.put("signature", Base64.getUrlEncoder().withoutPadding().encodeToString(signer.sign()));
      String digest = sha256Hex(canonical(event));
      String at = "#" + sequence + " ";
      if (!new String(input, StandardCharsets.UTF_8).equals(step.get("signing_input").asText()))
        failures.add(at + "signing input");
      if (!event.get("signature").asText().equals(step.get("signature").asText()))
        failures.add(at + "signature");
      if (!digest.equals(step.get("digest").asText())) failures.add(at + "digest");

      ObjectNode theirs = (ObjectNode) step.get("event");
      Signature verifier = Signature.getInstance("Ed25519");
      verifier.initVerify(publicKey);
      verifier.update(signingInput(theirs));
      if (!verifier.verify(Base64.getUrlDecoder().decode(theirs.get("signature").asText())))
        failures.add(at + "Python-signed event does not verify");
      if (!theirs.get("prevhash").asText().equals(prevhash)) failures.add(at + "prevhash");
      prevhash = digest;
    }
    System.out.println(JSON.writeValueAsString(
        JSON.createObjectNode().put("events", sequence).set("failures", JSON.valueToTree(failures))));
    System.exit(failures.isEmpty() ? 0 : 1);
  }
}
