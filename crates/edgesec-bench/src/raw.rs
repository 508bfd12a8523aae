//! The raw limits: the crypto operations behind each figure, done in this process with the
//! same library (aws-lc-rs) the key service uses, on 1 and on 2 threads. A service figure
//! divided by its limit says how much of the machine's crypto capacity reaches a client.

use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use aws_lc_rs::{hmac, rsa};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawOp {
    /// HMAC-SHA256 of a 64-byte message.
    Hmac,
    /// ECDSA P-256 (SHA-256) signature of a 64-byte message.
    P256Sign,
    /// What issuing a P-256 module certificate needs: a P-256 key pair for the module and one
    /// P-256 signature by the CA.
    CertP256,
    /// The same with an RSA-2048 module key.
    CertRsa2048,
}

impl RawOp {
    pub fn label(self) -> &'static str {
        match self {
            RawOp::Hmac => "HMAC-SHA256 (64 B)",
            RawOp::P256Sign => "ECDSA P-256 sign",
            RawOp::CertP256 => "P-256 keygen + P-256 sign",
            RawOp::CertRsa2048 => "RSA-2048 keygen + P-256 sign",
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            RawOp::Hmac => "hmac",
            RawOp::P256Sign => "p256_sign",
            RawOp::CertP256 => "cert_p256",
            RawOp::CertRsa2048 => "cert_rsa2048",
        }
    }
}

/// Runs `op` until `end` and returns how many were done.
fn run_until(op: RawOp, end: Instant) -> u64 {
    let msg = [0x5au8; 64];
    let rng = SystemRandom::new();
    let ca = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("P-256 keygen");
    let hkey = hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]);
    // Check the clock every few operations only: HMAC is fast enough for the clock to matter.
    let batch = match op {
        RawOp::Hmac => 256,
        RawOp::P256Sign => 16,
        RawOp::CertP256 | RawOp::CertRsa2048 => 1,
    };
    let mut n = 0u64;
    while Instant::now() < end {
        for _ in 0..batch {
            match op {
                RawOp::Hmac => {
                    std::hint::black_box(hmac::sign(&hkey, std::hint::black_box(&msg)));
                }
                RawOp::P256Sign => {
                    std::hint::black_box(ca.sign(&rng, &msg).expect("sign"));
                }
                RawOp::CertP256 => {
                    let leaf = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
                        .expect("P-256 keygen");
                    std::hint::black_box(leaf.public_key());
                    std::hint::black_box(ca.sign(&rng, &msg).expect("sign"));
                }
                RawOp::CertRsa2048 => {
                    let leaf = rsa::KeyPair::generate(rsa::KeySize::Rsa2048).expect("RSA keygen");
                    std::hint::black_box(leaf.public_key());
                    std::hint::black_box(ca.sign(&rng, &msg).expect("sign"));
                }
            }
        }
        n += batch;
    }
    n
}

/// Operations per second of `op` on `threads` threads for `duration` (after a short warm-up).
pub fn measure(op: RawOp, threads: usize, duration: Duration) -> f64 {
    run_until(op, Instant::now() + Duration::from_millis(50));
    let start = Instant::now();
    let end = start + duration;
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || run_until(op, end)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("raw thread"))
            .sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}
