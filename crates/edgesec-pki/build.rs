//! Records when this crate was built, as the earliest time the clock may plausibly read.
//! A reproducible build sets SOURCE_DATE_EPOCH; otherwise the build machine's clock is used.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=EDGESEC_PKI_BUILD_EPOCH={epoch}");
}
