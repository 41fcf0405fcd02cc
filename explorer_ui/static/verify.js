// AITBC receipt verifier: checks a receipt proof bundle (aitbc-receipt-proof/1) or a bare
// receipt in the browser, against a genesis document, asking no server anything.
// The same checks as `aitbc-node verify-receipt` (chain/proofs.py verify_bundle), split into
// four steps: signature, inclusion, header, authority. BLAKE3 and Ed25519 come from the noble
// libraries (vendor/noble.js, global AitbcNoble), through their synchronous APIs only.
// JSON numbers are kept as their raw text, so re-serialising a receipt gives exactly the bytes
// that were signed (a price of 4e-06 stays "4e-06").
(function (root) {
  "use strict";

  var STEPS = ["signature", "inclusion", "header", "authority"];
  var BUNDLE_FORMAT = "aitbc-receipt-proof/1";
  var BUNDLE_FIELDS = ["format", "chain_id", "transaction", "tx_index", "inclusion_path", "header", "header_signature"];
  var HEADER_FIELDS = ["height", "prev_hash", "timestamp", "tx_root", "state_root", "tx_count", "proposer"];
  var RECEIPT_FIELDS = ["receipt_id", "job_id", "provider", "client", "units", "unit_type", "price", "model", "started_at", "completed_at"];
  var PROTOCOL_FIELDS = ["version", "duration_ms", "coordinator_id"];
  var MINER_FIELDS = ["result_hash", "miner_signature"];
  var ACCEPTED_ALGS = ["Ed25519", "ed25519"]; // "ed25519": receipts sealed before 0.2.0
  var HEX32 = /^[0-9a-f]{64}$/;
  var HEX64 = /^[0-9a-f]{128}$/;
  var UINT = /^(0|[1-9][0-9]*)$/;

  // -- JSON, numbers kept as raw text -------------------------------------------------------

  function RawNumber(text) { this.text = text; }

  var NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  var ESCAPES = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

  // Strict JSON: duplicate keys, NaN, Infinity and a byte order mark are refused, as the node's
  // parse_strict refuses them. Objects have no prototype, so any key is an ordinary key.
  function parseJSON(text) {
    var i = 0, n = text.length;
    function fail(message) { throw new SyntaxError(message + " (at character " + i + ")"); }
    function space() {
      while (i < n) {
        var c = text.charCodeAt(i);
        if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++; else break;
      }
    }
    function string() {
      i++;
      var out = "", start = i;
      for (;;) {
        if (i >= n) fail("unterminated string");
        var c = text.charCodeAt(i);
        if (c === 0x22) { out += text.slice(start, i); i++; return out; }
        if (c < 0x20) fail("control character in a string");
        if (c !== 0x5c) { i++; continue; }
        out += text.slice(start, i);
        var e = text[i + 1];
        if (e === "u") {
          var hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("bad \\u escape");
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
        } else if (e !== undefined && Object.prototype.hasOwnProperty.call(ESCAPES, e)) {
          out += ESCAPES[e];
          i += 2;
        } else {
          fail("bad escape");
        }
        start = i;
      }
    }
    function value(depth) {
      if (depth > 256) fail("nested too deep");
      space();
      var c = text[i];
      if (c === "{") {
        i++;
        var obj = Object.create(null);
        space();
        if (text[i] === "}") { i++; return obj; }
        for (;;) {
          space();
          if (text[i] !== '"') fail("expected a key");
          var key = string();
          space();
          if (text[i] !== ":") fail("expected ':'");
          i++;
          if (Object.prototype.hasOwnProperty.call(obj, key)) fail("duplicate key " + JSON.stringify(key));
          obj[key] = value(depth + 1);
          space();
          if (text[i] === ",") { i++; continue; }
          if (text[i] === "}") { i++; return obj; }
          fail("expected ',' or '}'");
        }
      }
      if (c === "[") {
        i++;
        var list = [];
        space();
        if (text[i] === "]") { i++; return list; }
        for (;;) {
          list.push(value(depth + 1));
          space();
          if (text[i] === ",") { i++; continue; }
          if (text[i] === "]") { i++; return list; }
          fail("expected ',' or ']'");
        }
      }
      if (c === '"') return string();
      if (c === "-" || (c >= "0" && c <= "9")) {
        NUMBER.lastIndex = i;
        var m = NUMBER.exec(text);
        if (!m) fail("bad number");
        i += m[0].length;
        return new RawNumber(m[0]);
      }
      if (text.startsWith("true", i)) { i += 4; return true; }
      if (text.startsWith("false", i)) { i += 5; return false; }
      if (text.startsWith("null", i)) { i += 4; return null; }
      fail(c === undefined ? "unexpected end of text" : "unexpected " + JSON.stringify(c));
    }
    if (text.charCodeAt(0) === 0xfeff) fail("JSON must not start with a byte order mark");
    var result = value(0);
    space();
    if (i !== n) fail("extra text after the JSON value");
    return result;
  }

  function isObject(v) {
    return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof RawNumber);
  }

  function keysOf(obj) { return Object.keys(obj); }

  function hasExactly(obj, names) {
    var keys = keysOf(obj);
    return keys.length === names.length && names.every(function (k) { return Object.prototype.hasOwnProperty.call(obj, k); });
  }

  // -- canonical JSON, as Python's json.dumps(sort_keys=True, separators=(",", ":")) ---------

  // Python sorts keys by code point; JavaScript's default sort compares UTF-16 units, which
  // differs for characters above U+FFFF against U+E000..U+FFFF.
  function compareKeys(a, b) {
    var i = 0, j = 0;
    while (i < a.length && j < b.length) {
      var x = a.codePointAt(i), y = b.codePointAt(j);
      if (x !== y) return x < y ? -1 : 1;
      i += x > 0xffff ? 2 : 1;
      j += y > 0xffff ? 2 : 1;
    }
    return (a.length - i) - (b.length - j);
  }

  var SHORT = { 0x22: '\\"', 0x5c: "\\\\", 0x0a: "\\n", 0x0d: "\\r", 0x09: "\\t", 0x08: "\\b", 0x0c: "\\f" };

  // ascii: escape everything outside ' '..'~' as \uXXXX (ensure_ascii=True); otherwise only
  // the characters JSON requires escaped (ensure_ascii=False).
  function quote(s, ascii) {
    var out = '"';
    for (var i = 0; i < s.length; i++) {
      var c = s.charCodeAt(i);
      if (SHORT[c] !== undefined) out += SHORT[c];
      else if (c < 0x20 || (ascii && c > 0x7e)) out += "\\u" + ("000" + c.toString(16)).slice(-4);
      else out += s[i];
    }
    return out + '"';
  }

  // dropNulls: leave out null values at every depth, object entries and list items alike.
  function canonicalText(value, ascii, dropNulls) {
    if (value === null) return "null";
    if (value === true) return "true";
    if (value === false) return "false";
    if (value instanceof RawNumber) return value.text;
    if (typeof value === "string") return quote(value, ascii);
    if (Array.isArray(value)) {
      var items = dropNulls ? value.filter(function (v) { return v !== null; }) : value;
      return "[" + items.map(function (v) { return canonicalText(v, ascii, dropNulls); }).join(",") + "]";
    }
    if (isObject(value)) {
      var keys = keysOf(value).filter(function (k) { return !(dropNulls && value[k] === null); }).sort(compareKeys);
      return "{" + keys.map(function (k) { return quote(k, ascii) + ":" + canonicalText(value[k], ascii, dropNulls); }).join(",") + "}";
    }
    throw new TypeError("only parsed JSON values can be encoded (got " + typeof value + ")");
  }

  var LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/;

  function utf8(text) {
    if (LONE_SURROGATE.test(text)) throw new TypeError("text holds a lone surrogate: it has no UTF-8 form");
    return new TextEncoder().encode(text);
  }

  function ascii(text) {
    var out = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out;
  }

  // chain.encoding.canonical: sorted keys, compact, UTF-8, nulls kept (headers, genesis).
  function canonicalBytes(value) { return utf8(canonicalText(value, false, false)); }

  // chain.receipts.signing_bytes: the receipt without `signature`, nulls dropped at every
  // depth, ASCII-escaped.
  function receiptSigningBytes(receipt) {
    var body = Object.create(null);
    keysOf(receipt).forEach(function (k) { if (k !== "signature") body[k] = receipt[k]; });
    return ascii(canonicalText(body, true, true));
  }

  // chain.receipts.completion_signing_bytes: what a miner co-signs.
  function completionSigningBytes(jobId, resultHash) {
    return canonicalBytes({ job_id: jobId, result_hash: resultHash });
  }

  // -- encodings and primitives -------------------------------------------------------------

  function toHex(bytes) {
    var out = "";
    for (var i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
    return out;
  }

  function fromHex(hex) {
    var out = new Uint8Array(hex.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  function b64url(bytes) {
    var s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // Base64url without padding, in its one canonical spelling (as chain.crypto.b64url_decode).
  function b64urlDecode(text) {
    if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
      throw new TypeError("not base64url");
    }
    var bin = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    if (b64url(out) !== text) throw new TypeError("base64url is not in canonical form");
    return out;
  }

  function lib() {
    var noble = root.AitbcNoble;
    if (!noble || !noble.blake3 || !noble.ed25519) throw new Error("the noble libraries (noble.js) did not load");
    return noble;
  }

  function blake3(bytes) { return lib().blake3(bytes); }

  function ed25519Valid(publicKey, message, signature) {
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    try {
      // zip215 off: RFC 8032 rules, as libsodium (the node's PyNaCl) applies them.
      return lib().ed25519.verify(signature, message, publicKey, { zip215: false }) === true;
    } catch (e) {
      return false;
    }
  }

  function equalBytes(a, b) {
    if (a.length !== b.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  var LEAF = Uint8Array.of(0), NODE = Uint8Array.of(1);

  function concat() {
    var parts = Array.prototype.slice.call(arguments), size = 0, at = 0;
    parts.forEach(function (p) { size += p.length; });
    var out = new Uint8Array(size);
    parts.forEach(function (p) { out.set(p, at); at += p.length; });
    return out;
  }

  // RFC 9162 section 2.1.3.2, with BLAKE3 (chain.merkle.root_from_inclusion_proof). Indexes
  // are BigInt: a tx_index read from raw text may exceed 2^53.
  function rootFromPath(leafBytes, index, size, path) {
    var fn = index, sn = size - 1n, r = blake3(concat(LEAF, leafBytes));
    for (var k = 0; k < path.length; k++) {
      var p = path[k];
      if (sn === 0n) throw new Error("the path is longer than the tree is deep");
      if ((fn & 1n) === 1n || fn === sn) {
        r = blake3(concat(NODE, p, r));
        if ((fn & 1n) === 0n) {
          while (fn !== 0n && (fn & 1n) === 0n) { fn >>= 1n; sn >>= 1n; }
        }
      } else {
        r = blake3(concat(NODE, r, p));
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("the path is shorter than the tree is deep");
    return r;
  }

  // -- the checks ------------------------------------------------------------------------------

  function Failure(reason) { this.reason = reason; }

  function check(condition, reason) { if (!condition) throw new Failure(reason); }

  // Runs fn; a Failure (or any error) becomes a failed step with its reason.
  function step(fn) {
    try {
      return { result: "pass", detail: fn() || "" };
    } catch (e) {
      return { result: "fail", reason: e instanceof Failure ? e.reason : String((e && e.message) || e) };
    }
  }

  function skipped(reason) { return { result: "skipped", reason: reason }; }

  function signatureKey(block, what, exact) {
    check(isObject(block), what + " must be an object with alg, key_id and sig");
    check(exact ? hasExactly(block, ["alg", "key_id", "sig"]) : ["alg", "key_id", "sig"].every(function (k) { return k in block; }),
      what + " must be an object with " + (exact ? "exactly " : "") + "alg, key_id and sig");
    check(ACCEPTED_ALGS.indexOf(block.alg) >= 0, what + " alg " + JSON.stringify(typeof block.alg === "string" ? block.alg : String(block.alg)) + ' is not supported (expected "Ed25519")');
    var key, sig;
    try {
      key = b64urlDecode(block.key_id);
      sig = b64urlDecode(block.sig);
    } catch (e) {
      throw new Failure(what + " key_id and sig must be base64url: " + e.message);
    }
    return { key: key, sig: sig };
  }

  // The receipt's authority signature and, when present, the miner's co-signature.
  // payload: the job.complete payload carrying it (bundles), or null (a bare receipt).
  function checkSignatures(receipt, payload) {
    check(isObject(receipt), "a receipt must be a JSON object");
    var cosigned = MINER_FIELDS.some(function (k) { return k in receipt; });
    if (payload) {
      var fields = RECEIPT_FIELDS.concat("version" in receipt ? PROTOCOL_FIELDS : [], ["signature"], cosigned ? MINER_FIELDS : []);
      check(hasExactly(receipt, fields), "the transaction carries no receipt with the receipt fields");
      check(payload.job_id === receipt.job_id, "the transaction completes another job than the receipt names");
    }
    var signer = signatureKey(receipt.signature, "signature", false);
    var message;
    try {
      message = receiptSigningBytes(receipt);
    } catch (e) {
      throw new Failure("receipt cannot be encoded for signing: " + e.message);
    }
    check(ed25519Valid(signer.key, message, signer.sig), "signature over the receipt's canonical bytes does not verify");
    var detail = "Ed25519 signature by " + toHex(signer.key) + " verifies over the receipt's canonical bytes";
    if (cosigned) {
      if (payload) {
        var digest = payload.result;
        check(isObject(digest) && hasExactly(digest, ["blake3"]) && digest.blake3 === receipt.result_hash,
          "receipt result_hash is not the digest of the transaction's result");
      }
      check(typeof receipt.job_id === "string" && typeof receipt.result_hash === "string",
        "a co-signed receipt needs a string job_id and result_hash");
      var miner = signatureKey(receipt.miner_signature, "miner_signature", true);
      check(ed25519Valid(miner.key, completionSigningBytes(receipt.job_id, receipt.result_hash), miner.sig),
        "miner co-signature over {job_id, result_hash} does not verify");
      detail += "; the miner's co-signature by " + toHex(miner.key) + " verifies";
    }
    return detail;
  }

  function readHeader(header) {
    check(isObject(header) && hasExactly(header, HEADER_FIELDS), "header must have exactly the fields " + HEADER_FIELDS.join(", "));
    ["height", "timestamp", "tx_count"].forEach(function (name) {
      check(header[name] instanceof RawNumber && UINT.test(header[name].text), "header " + name + " must be a non-negative integer");
    });
    ["prev_hash", "tx_root", "state_root", "proposer"].forEach(function (name) {
      check(typeof header[name] === "string" && HEX32.test(header[name]), "header " + name + " must be 64 lowercase hex characters");
    });
    return header;
  }

  function readGenesis(text) {
    var genesis;
    try {
      genesis = parseJSON(text);
    } catch (e) {
      throw new Error("the genesis is not valid JSON: " + e.message);
    }
    if (!isObject(genesis) || typeof genesis.chain_id !== "string" || !Array.isArray(genesis.authorities)) {
      throw new Error("the genesis must be a JSON object with chain_id and authorities");
    }
    var authorities = genesis.authorities.filter(function (a) { return typeof a === "string" && HEX32.test(a); });
    return {
      chainId: genesis.chain_id,
      authorities: authorities,
      hash: toHex(blake3(canonicalBytes(genesis))),
    };
  }

  // The bundle, or the receipt (a bare one, or the protocol sample's {payload, signature}).
  function readDocument(text) {
    var doc;
    try {
      doc = parseJSON(text.trim());
    } catch (e) {
      throw new Error("not valid JSON: " + e.message);
    }
    if (!isObject(doc)) throw new Error("expected a JSON object: a receipt proof bundle or a receipt");
    if ("format" in doc || "transaction" in doc || "header" in doc) {
      if (!hasExactly(doc, BUNDLE_FIELDS)) throw new Error("a bundle has exactly the fields " + BUNDLE_FIELDS.join(", "));
      if (doc.format !== BUNDLE_FORMAT) throw new Error("bundle format must be " + JSON.stringify(BUNDLE_FORMAT));
      return { kind: "bundle", bundle: doc };
    }
    if (isObject(doc.payload) && !("receipt_id" in doc)) {
      if ("signature" in doc.payload) throw new Error("the wrapper's payload must not carry its own signature");
      var receipt = Object.create(null);
      keysOf(doc.payload).forEach(function (k) { receipt[k] = doc.payload[k]; });
      receipt.signature = doc.signature;
      return { kind: "receipt", receipt: receipt };
    }
    return { kind: "receipt", receipt: doc };
  }

  function signerHex(receipt) {
    try {
      var key = b64urlDecode(receipt.signature.key_id);
      return key.length === 32 ? toHex(key) : null;
    } catch (e) {
      return null;
    }
  }

  // Everything the document claims, checked against the genesis: {kind, steps: {name: {result,
  // reason|detail}}, genesis}. Nothing here reads the network.
  function verify(documentText, genesisText) {
    var genesis = readGenesis(genesisText);
    var doc = readDocument(documentText);
    var steps = {};
    if (doc.kind === "receipt") {
      var receipt = doc.receipt;
      steps.signature = step(function () { return checkSignatures(receipt, null); });
      steps.inclusion = skipped("a bare receipt carries no inclusion path: verify its proof bundle to check it is on chain");
      steps.header = skipped("a bare receipt carries no block header");
      steps.authority = step(function () {
        check(genesis.authorities.length > 0, "the genesis lists no authorities (use the chain's effective genesis.json)");
        var signer = isObject(receipt) ? signerHex(receipt) : null;
        check(signer !== null, "the receipt names no readable signer key");
        check(genesis.authorities.indexOf(signer) >= 0, "receipt signer " + signer + " is not an authority of this genesis");
        return "receipt signer " + signer + " is an authority of " + genesis.chainId;
      });
      return { kind: "receipt", steps: steps, genesis: genesis };
    }
    var bundle = doc.bundle, tx = null, txError = null;
    if (typeof bundle.transaction !== "string") {
      txError = "transaction must be a string holding the transaction's canonical JSON";
    } else {
      try {
        tx = parseJSON(bundle.transaction);
      } catch (e) {
        txError = "the transaction is not valid JSON: " + e.message;
      }
    }
    if (tx !== null && !(isObject(tx) && hasExactly(tx, ["type", "payload", "timestamp"]) && tx.type === "job.complete")) {
      txError = "transaction is not a job.complete transaction";
    }
    var payload = txError === null && isObject(tx.payload) ? tx.payload : null;
    var receiptOf = payload ? payload.receipt : null;

    steps.signature = step(function () {
      check(txError === null, txError);
      check(payload !== null, "the transaction carries no payload");
      return checkSignatures(receiptOf, payload);
    });
    steps.inclusion = step(function () {
      check(typeof bundle.transaction === "string", "transaction must be a string");
      var header = bundle.header;
      check(isObject(header) && header.tx_count instanceof RawNumber && UINT.test(header.tx_count.text), "header tx_count must be a non-negative integer");
      check(typeof header.tx_root === "string" && HEX32.test(header.tx_root), "header tx_root must be 64 lowercase hex characters");
      var index = bundle.tx_index, size = BigInt(header.tx_count.text);
      check(index instanceof RawNumber && UINT.test(index.text) && BigInt(index.text) < size, "tx_index must be an integer below the header's tx_count");
      var path = bundle.inclusion_path;
      check(Array.isArray(path) && path.every(function (p) { return typeof p === "string" && HEX32.test(p); }),
        "inclusion_path must be a list of 64-character lowercase hex hashes");
      var root;
      try {
        root = rootFromPath(blake3(utf8(bundle.transaction)), BigInt(index.text), size, path.map(fromHex));
      } catch (e) {
        throw new Failure("inclusion path does not lead to tx_root: " + e.message);
      }
      check(toHex(root) === header.tx_root, "inclusion path does not lead to the header's tx_root");
      return "the transaction is leaf " + index.text + " of " + size + " under tx_root " + header.tx_root;
    });
    steps.header = step(function () {
      var header = readHeader(bundle.header);
      var signature = bundle.header_signature;
      check(typeof signature === "string" && HEX64.test(signature), "header_signature must be 128 lowercase hex characters");
      var hash = blake3(canonicalBytes(header));
      check(ed25519Valid(fromHex(header.proposer), hash, fromHex(signature)), "proposer signature over the header hash does not verify");
      return "block " + header.height.text + ", hash " + toHex(hash) + ", sealed by " + header.proposer;
    });
    steps.authority = step(function () {
      check(genesis.authorities.length > 0, "the genesis lists no authorities (use the chain's effective genesis.json)");
      check(bundle.chain_id === genesis.chainId,
        "bundle is for chain " + JSON.stringify(String(bundle.chain_id)) + ", the genesis is for " + JSON.stringify(genesis.chainId));
      var signer = isObject(receiptOf) && isObject(receiptOf.signature) ? signerHex(receiptOf) : null;
      check(signer !== null, "the receipt names no readable signer key");
      check(genesis.authorities.indexOf(signer) >= 0, "receipt signer " + signer + " is not an authority of this genesis");
      var proposer = isObject(bundle.header) ? bundle.header.proposer : null;
      check(typeof proposer === "string" && genesis.authorities.indexOf(proposer) >= 0,
        "block proposer " + String(proposer) + " is not an authority of this genesis");
      return "receipt signer and block proposer are authorities of " + genesis.chainId;
    });
    return { kind: "bundle", steps: steps, genesis: genesis };
  }

  // -- the page ----------------------------------------------------------------------------

  var LABELS = { pass: "✓ passed", fail: "✗ failed", skipped: "– not applicable" };

  function show(container, outcome, error) {
    var passed = true;
    STEPS.forEach(function (name) {
      var el = container.querySelector('[data-check="' + name + '"]');
      if (!el) return;
      var result = outcome ? outcome.steps[name] : { result: "fail", reason: error };
      if (result.result === "fail") passed = false;
      el.setAttribute("data-result", result.result);
      el.querySelector(".check-status").textContent = LABELS[result.result];
      var reason = el.querySelector(".check-reason");
      reason.textContent = result.reason || result.detail || "";
    });
    var summary = container.querySelector(".verify-summary");
    if (summary) {
      summary.hidden = false;
      summary.setAttribute("data-result", passed ? "pass" : "fail");
      summary.textContent = passed
        ? (outcome.kind === "bundle"
          ? "Every check passes: an authority of this genesis signed the receipt and sealed it into a block."
          : "The receipt's signature verifies and its signer is an authority of this genesis (a bare receipt: not checked to be on chain).")
        : "Verification failed: see the checks marked ✗.";
    }
  }

  function clear(container) {
    STEPS.forEach(function (name) {
      var el = container.querySelector('[data-check="' + name + '"]');
      if (!el) return;
      el.removeAttribute("data-result");
      el.querySelector(".check-status").textContent = "";
      el.querySelector(".check-reason").textContent = "";
    });
  }

  function run(container, documentText, genesisText) {
    clear(container);
    var outcome = null, error = null;
    try {
      outcome = verify(documentText, genesisText);
    } catch (e) {
      error = String((e && e.message) || e);
    }
    show(container, outcome, error);
    return outcome;
  }

  function readFile(file) {
    return file.text ? file.text() : new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () { resolve(reader.result); };
      reader.onerror = function () { reject(reader.error); };
      reader.readAsText(file);
    });
  }

  // The /verify page (and the offline file): a genesis (this node's, embedded in the page, or
  // the visitor's own), the document, the Verify button.
  function setupVerifyPage(page) {
    var input = page.querySelector("#verify-input");
    var button = page.querySelector("#verify-button");
    var hashEl = page.querySelector("#genesis-hash");
    var sourceEl = page.querySelector("#genesis-source");
    var chainEl = page.querySelector("#genesis-chain");
    var embedded = document.getElementById("node-genesis");
    var genesis = null;

    function useGenesis(text, source) {
      try {
        var g = readGenesis(text);
        genesis = text;
        hashEl.textContent = g.hash;
        chainEl.textContent = g.chainId + " · " + g.authorities.length + " authorit" + (g.authorities.length === 1 ? "y" : "ies");
        sourceEl.textContent = source;
        page.setAttribute("data-genesis", "ready");
      } catch (e) {
        genesis = null;
        hashEl.textContent = "—";
        chainEl.textContent = "";
        sourceEl.textContent = "not usable: " + e.message;
        page.setAttribute("data-genesis", "missing");
      }
    }

    if (embedded && embedded.textContent.trim()) {
      useGenesis(embedded.textContent, embedded.getAttribute("data-source") || "this node");
    } else {
      page.setAttribute("data-genesis", "missing");
    }
    var genesisFile = page.querySelector("#genesis-file");
    if (genesisFile) {
      genesisFile.addEventListener("change", function () {
        var file = genesisFile.files && genesisFile.files[0];
        if (file) readFile(file).then(function (text) { useGenesis(text, "your file " + file.name); });
      });
    }
    var genesisText = page.querySelector("#genesis-text");
    if (genesisText) {
      genesisText.addEventListener("change", function () {
        if (genesisText.value.trim()) useGenesis(genesisText.value, "the genesis.json you pasted");
      });
    }
    var documentFile = page.querySelector("#verify-file");
    if (documentFile) {
      documentFile.addEventListener("change", function () {
        var file = documentFile.files && documentFile.files[0];
        if (file) readFile(file).then(function (text) { input.value = text; });
      });
    }
    input.addEventListener("dragover", function (event) { event.preventDefault(); input.classList.add("dropping"); });
    input.addEventListener("dragleave", function () { input.classList.remove("dropping"); });
    input.addEventListener("drop", function (event) {
      event.preventDefault();
      input.classList.remove("dropping");
      var file = event.dataTransfer && event.dataTransfer.files[0];
      if (file) readFile(file).then(function (text) { input.value = text; });
    });
    button.disabled = false;
    button.addEventListener("click", function () {
      if (genesis === null) {
        show(page, null, "no genesis to verify against: choose the chain's genesis.json first");
        return;
      }
      run(page, input.value, genesis);
    });
  }

  // A receipt page: "Verify in this browser" fetches the receipt's bundle and this node's
  // genesis (data, not verdicts), then runs the same checks.
  function setupReceiptButton(box) {
    var button = document.getElementById("verify-here");
    if (!button) return;
    var sourceEl = box.querySelector("#genesis-source");
    var hashEl = box.querySelector("#genesis-hash");
    button.hidden = false;
    button.addEventListener("click", function () {
      button.disabled = true;
      var fetchText = function (url) {
        return fetch(url, { cache: "no-store" }).then(function (r) {
          return r.ok ? r.text() : Promise.reject(new Error(url + " answered " + r.status));
        });
      };
      Promise.all([fetchText(box.getAttribute("data-bundle")), fetchText(box.getAttribute("data-genesis"))])
        .then(function (texts) {
          box.hidden = false;
          box.querySelector(".checks").hidden = false;
          var outcome = run(box, texts[0], texts[1]);
          if (outcome) {
            hashEl.textContent = outcome.genesis.hash;
            sourceEl.textContent = "this node's " + box.getAttribute("data-genesis");
          }
        })
        .catch(function (e) {
          box.querySelector(".checks").hidden = false;
          show(box, null, "could not load the bundle or the genesis: " + e.message);
        })
        .then(function () { button.disabled = false; });
    });
  }

  root.AitbcVerify = {
    parseJSON: parseJSON,
    RawNumber: RawNumber,
    canonicalText: canonicalText,
    canonicalBytes: canonicalBytes,
    receiptSigningBytes: receiptSigningBytes,
    verify: verify,
    toHex: toHex,
  };

  function setup() {
    var page = document.getElementById("verifier");
    if (page) setupVerifyPage(page);
    var box = document.getElementById("receipt-verifier");
    if (box) setupReceiptButton(box);
  }
  if (typeof document !== "undefined") {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
    else setup();
  }
})(typeof window !== "undefined" ? window : globalThis);
