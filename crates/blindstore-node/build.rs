//! Records the git revision the binary is built from (`blindstore --version`, `/v1/health`,
//! `blindstore_build_info`): `BLINDSTORE_REVISION` if set (packagers), else `git rev-parse`,
//! else "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BLINDSTORE_REVISION");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Rebuilt when HEAD moves (a commit, a checkout).
    let head = repo.join(".git/HEAD");
    if head.exists() {
        println!("cargo:rerun-if-changed={}", head.display());
        if let Ok(text) = std::fs::read_to_string(&head) {
            if let Some(reference) = text.trim().strip_prefix("ref: ") {
                let path = repo.join(".git").join(reference);
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
    }
    let revision = std::env::var("BLINDSTORE_REVISION").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(&repo)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    });
    println!(
        "cargo:rustc-env=BLINDSTORE_REVISION={}",
        revision.unwrap_or_else(|| "unknown".into())
    );
}
