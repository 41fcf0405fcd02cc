// What the in-browser receipt verifier takes from the noble libraries: BLAKE3 and Ed25519,
// both with synchronous APIs (no crypto.subtle, so it also runs from a file:// page).
export { blake3 } from "@noble/hashes/blake3.js";
export { ed25519 } from "@noble/curves/ed25519.js";
