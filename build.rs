//! Puts the git commit zonelog is built from into `BUILD_GIT_COMMIT`, for
//! `zonelog --version`. A build outside a git checkout (a source tarball, a
//! package build) takes `BUILD_GIT_COMMIT` from the environment, or says
//! "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=BUILD_GIT_COMMIT");
    // The commit only, no "-dirty": watching the work tree for that would
    // rerun this (and rebuild zonelog) after every `git status`.
    let commit = std::env::var("BUILD_GIT_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    // Rebuilt when HEAD moves (a commit, a checkout), not on every build:
    // only files that exist are named, since cargo reruns a build script
    // on every build for a path that is missing.
    // `--git-path`, not `--git-dir`: in a worktree HEAD is the worktree's
    // own, while branch refs and packed-refs live in the shared directory.
    let git_path = |name: &str| git(&["rev-parse", "--git-path", name]);
    if let Some(head_file) = git_path("HEAD") {
        let mut watched = vec![head_file];
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.extend(git_path(&head));
        }
        watched.extend(git_path("packed-refs"));
        for path in watched {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
    println!(
        "cargo:rustc-env=BUILD_GIT_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
}
