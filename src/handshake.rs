//! The proofs of the worker–server handshake: how a worker and a server show each other that they
//! hold the same cluster token without the token ever crossing the wire.
//!
//! Gossip is unauthenticated, so anyone who can send UDP to the gossip port can announce itself as
//! a server. A worker therefore challenges a server with a fresh nonce and trusts it only once it
//! answers with `HMAC-SHA256(token, "shoal/v1/server" ‖ cluster ‖ server id ‖ worker nonce ‖ server
//! nonce)`; then the worker proves itself with the mirror image under the label
//! `"shoal/v1/worker"`. The labels keep one side's proof from ever standing in for the other's,
//! every field is length-prefixed so no two different inputs encode alike, and proofs are checked
//! in constant time (`hmac`'s `verify_slice`).
//!
//! This module owns the proof arithmetic and the nonce type only; the exchanges themselves live
//! in `api::session` (server) and `worker::link` (worker). It must never log, send or store a
//! token.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a nonce (and of a session id): 256 bits from the operating system's CSPRNG.
pub const NONCE_BYTES: usize = 32;
/// Bytes of an HMAC-SHA256 proof.
pub const PROOF_BYTES: usize = 32;

const SERVER_LABEL: &str = "shoal/v1/server";
const WORKER_LABEL: &str = "shoal/v1/worker";

/// A fresh random value, used once: a challenge, or a session id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce([u8; NONCE_BYTES]);

impl Nonce {
    pub fn fresh() -> Nonce {
        let mut bytes = [0u8; NONCE_BYTES];
        // ThreadRng is a CSPRNG (ChaCha12) seeded from the operating system.
        rand::rng().fill_bytes(&mut bytes);
        Nonce(bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads a nonce sent as hex; the error says what was expected, for the caller to pin on
    /// its field.
    pub fn from_hex(text: &str) -> Result<Nonce, String> {
        decode_fixed(text).map(Nonce)
    }
}

/// One side's answer to the other's challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof([u8; PROOF_BYTES]);

impl Proof {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Result<Proof, String> {
        decode_fixed(text).map(Proof)
    }
}

fn decode_fixed<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    hex::decode_to_slice(text, &mut bytes)
        .map_err(|_| format!("expected {} hex digits ({N} bytes)", N * 2))?;
    Ok(bytes)
}

/// What the server signs: it knows the token, for this cluster, as this id, now (the worker's
/// fresh nonce), and its own nonce, which the worker's proof will cover in turn.
pub struct ServerClaim<'a> {
    pub cluster: &'a str,
    pub server_id: &'a str,
    pub worker_nonce: &'a Nonce,
    pub server_nonce: &'a Nonce,
}

/// What the worker signs once the server has proved itself.
pub struct WorkerClaim<'a> {
    pub cluster: &'a str,
    pub worker_id: &'a str,
    pub server_nonce: &'a Nonce,
    pub worker_nonce: &'a Nonce,
}

impl ServerClaim<'_> {
    pub fn prove(&self, token: &str) -> Proof {
        Proof(self.mac(token).finalize().into_bytes().into())
    }

    /// Whether `proof` was made with `token` over exactly this claim (constant time).
    pub fn verify(&self, token: &str, proof: &Proof) -> bool {
        self.mac(token).verify_slice(&proof.0).is_ok()
    }

    fn mac(&self, token: &str) -> HmacSha256 {
        keyed(
            token,
            &[
                SERVER_LABEL.as_bytes(),
                self.cluster.as_bytes(),
                self.server_id.as_bytes(),
                &self.worker_nonce.0,
                &self.server_nonce.0,
            ],
        )
    }
}

impl WorkerClaim<'_> {
    pub fn prove(&self, token: &str) -> Proof {
        Proof(self.mac(token).finalize().into_bytes().into())
    }

    /// Whether `proof` was made with `token` over exactly this claim (constant time).
    pub fn verify(&self, token: &str, proof: &Proof) -> bool {
        self.mac(token).verify_slice(&proof.0).is_ok()
    }

    fn mac(&self, token: &str) -> HmacSha256 {
        keyed(
            token,
            &[
                WORKER_LABEL.as_bytes(),
                self.cluster.as_bytes(),
                self.worker_id.as_bytes(),
                &self.server_nonce.0,
                &self.worker_nonce.0,
            ],
        )
    }
}

/// HMAC-SHA256 keyed with the token over length-prefixed fields.
fn keyed(token: &str, fields: &[&[u8]]) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(token.as_bytes())
        .expect("HMAC takes a key of any length");
    for field in fields {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field);
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "s3cret-Tok3n";

    #[test]
    fn a_server_proof_verifies_with_the_same_token_and_claim_only() {
        let (worker_nonce, server_nonce) = (Nonce::fresh(), Nonce::fresh());
        let claim = ServerClaim {
            cluster: "prod",
            server_id: "server-1",
            worker_nonce: &worker_nonce,
            server_nonce: &server_nonce,
        };
        let proof = claim.prove(TOKEN);
        assert!(claim.verify(TOKEN, &proof));
        assert!(!claim.verify("s3cret-Tok3N", &proof), "wrong token");
        assert!(!claim.verify("", &proof), "empty token");
        let swapped = ServerClaim {
            worker_nonce: &server_nonce,
            server_nonce: &worker_nonce,
            ..claim
        };
        assert!(!swapped.verify(TOKEN, &proof), "swapped nonces");
        let other_cluster = ServerClaim {
            cluster: "staging",
            ..claim
        };
        assert!(!other_cluster.verify(TOKEN, &proof), "other cluster");
        let other_server = ServerClaim {
            server_id: "aaa-rogue",
            ..claim
        };
        assert!(!other_server.verify(TOKEN, &proof), "other server id");
        let stale = Nonce::fresh();
        let replayed = ServerClaim {
            worker_nonce: &stale,
            ..claim
        };
        assert!(
            !replayed.verify(TOKEN, &proof),
            "an old answer to a new challenge"
        );
    }

    #[test]
    fn a_worker_proof_verifies_with_the_same_token_and_claim_only() {
        let (worker_nonce, server_nonce) = (Nonce::fresh(), Nonce::fresh());
        let claim = WorkerClaim {
            cluster: "prod",
            worker_id: "w1",
            server_nonce: &server_nonce,
            worker_nonce: &worker_nonce,
        };
        let proof = claim.prove(TOKEN);
        assert!(claim.verify(TOKEN, &proof));
        assert!(!claim.verify("wrong", &proof));
        let swapped = WorkerClaim {
            server_nonce: &worker_nonce,
            worker_nonce: &server_nonce,
            ..claim
        };
        assert!(!swapped.verify(TOKEN, &proof), "swapped nonces");
        assert!(
            !WorkerClaim {
                cluster: "staging",
                ..claim
            }
            .verify(TOKEN, &proof)
        );
        assert!(
            !WorkerClaim {
                worker_id: "w2",
                ..claim
            }
            .verify(TOKEN, &proof)
        );
    }

    #[test]
    fn one_side_proof_never_stands_in_for_the_other() {
        // The same ids and nonces in the same order under both labels: only the label differs.
        let (a, b) = (Nonce::fresh(), Nonce::fresh());
        let server = ServerClaim {
            cluster: "c",
            server_id: "n",
            worker_nonce: &a,
            server_nonce: &b,
        };
        let worker = WorkerClaim {
            cluster: "c",
            worker_id: "n",
            server_nonce: &a,
            worker_nonce: &b,
        };
        assert!(!worker.verify(TOKEN, &server.prove(TOKEN)));
        assert!(!server.verify(TOKEN, &worker.prove(TOKEN)));
    }

    #[test]
    fn field_boundaries_are_part_of_the_proof() {
        let (a, b) = (Nonce::fresh(), Nonce::fresh());
        let one = ServerClaim {
            cluster: "ab",
            server_id: "c",
            worker_nonce: &a,
            server_nonce: &b,
        };
        let other = ServerClaim {
            cluster: "a",
            server_id: "bc",
            ..one
        };
        assert!(!other.verify(TOKEN, &one.prove(TOKEN)));
    }

    #[test]
    fn hex_forms_round_trip_and_bad_ones_name_the_expected_length() {
        let nonce = Nonce::fresh();
        assert_eq!(Nonce::from_hex(&nonce.to_hex()), Ok(nonce));
        assert_ne!(Nonce::fresh(), Nonce::fresh());
        for bad in ["", "abc", "zz", &"0".repeat(66)] {
            let error = Nonce::from_hex(bad).unwrap_err();
            assert!(error.contains("64 hex digits"), "{error}");
        }
        assert!(Proof::from_hex(&"f".repeat(64)).is_ok());
    }
}
