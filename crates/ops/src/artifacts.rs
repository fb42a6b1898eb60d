//! The functions' zips: built by cargo-lambda (or taken as they are with
//! `--skip-build`), checked, hashed, and uploaded to S3 under keys that
//! contain the SHA-256 of their content, so an unchanged binary keeps its key
//! and the stack's parameters do not change.
//!
//! The hash covers each entry's name, mode and stored bytes, not the zip as a
//! file: cargo-lambda writes the binary's modification time into the zip, so
//! a relink that produces the very same binary would otherwise look like new
//! code and update every function.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use sha2::{Digest as _, Sha256};
use xshell::{Shell, cmd};

use crate::aws_error;
use crate::template::{FUNCTIONS, Function};

/// Where `cargo lambda build` puts the zips by default, relative to the
/// workspace root: `target/lambda/<binary>/bootstrap.zip`.
pub const DEFAULT_LAMBDA_DIR: &str = "target/lambda";

/// The instruction set the functions run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Architecture {
    /// Intel and AMD (Lambda's default).
    #[default]
    #[value(name = "x86_64")]
    X86_64,
    /// Graviton: cheaper per GB-second.
    #[value(name = "arm64")]
    Arm64,
}

impl Architecture {
    /// The name Lambda and the template use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }

    /// cargo-lambda's flag for this target (Linux, glibc old enough for
    /// `provided.al2023`).
    fn cargo_lambda_flag(self) -> &'static str {
        match self {
            Self::X86_64 => "--x86-64",
            Self::Arm64 => "--arm64",
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the zip of `binary` is in `lambda_dir`, laid out as cargo-lambda
/// writes it.
pub fn zip_path(lambda_dir: &Path, binary: &str) -> PathBuf {
    lambda_dir.join(binary).join("bootstrap.zip")
}

/// Builds every function's zip into `lambda_dir` with the cargo-lambda of
/// `tools_bin` (the pinned venv, which also brings zig). One cargo
/// invocation for all binaries, so dependencies are resolved and compiled
/// once.
pub fn build(
    sh: &Shell,
    tools_bin: &Path,
    architecture: Architecture,
    lambda_dir: &Path,
) -> anyhow::Result<()> {
    let cargo_lambda = tools_bin.join("cargo-lambda");
    // cargo-lambda finds zig through the venv's python (`python3 -m ziglang`).
    let path = std::env::join_paths(
        std::iter::once(tools_bin.to_path_buf()).chain(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths),
        ),
    )?;
    let _path = sh.push_env("PATH", path);
    let arch = architecture.cargo_lambda_flag();
    let bins = FUNCTIONS.iter().flat_map(|f| ["--bin", f.binary]);
    println!("Building the Lambda functions for {architecture} with cargo-lambda (release)...");
    cmd!(
        sh,
        "{cargo_lambda} lambda build --release --output-format zip {arch} --lambda-dir {lambda_dir} {bins...}"
    )
    .run()
    .map_err(|e| anyhow::anyhow!("cargo lambda build failed ({e}); its output above says why"))?;
    Ok(())
}

/// A function's zip, ready to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The function it is the code of.
    pub function: Function,
    /// The zip on disk.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the zip's content (entries' names, modes and stored
    /// bytes; not their timestamps), lowercase hex.
    pub sha256: String,
}

impl Artifact {
    /// Reads and checks the zip of `function` in `lambda_dir`: it must be a
    /// zip with a `bootstrap` at its root, what `provided.al2023` runs.
    pub fn read(lambda_dir: &Path, function: Function) -> anyhow::Result<Self> {
        let path = zip_path(lambda_dir, function.binary);
        // One-line errors: the cause goes into the message.
        let bytes = std::fs::read(&path).map_err(|e| {
            anyhow::anyhow!(
                "no zip of {} at {} ({e}): build it with `cargo xtask deploy` (without --skip-build) or `cargo lambda build --release --output-format zip --bin {}`",
                function.binary,
                path.display(),
                function.binary
            )
        })?;
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes))
            .map_err(|e| anyhow::anyhow!("{} is not a zip file ({e})", path.display()))?;
        if !archive
            .file_names()
            .any(|name| name.is_ok_and(|name| name == "bootstrap"))
        {
            anyhow::bail!(
                "{} has no `bootstrap` at its root: Lambda's provided.al2023 runtime could not start it",
                path.display()
            );
        }
        let sha256 = content_digest(&mut archive)
            .map_err(|e| anyhow::anyhow!("cannot read {} ({e})", path.display()))?;
        Ok(Self {
            function,
            size: bytes.len() as u64,
            sha256,
            path,
        })
    }

    /// Its S3 key: content-addressed, so the same bytes always get the same
    /// key and a changed zip a new one.
    pub fn key(&self) -> String {
        format!("lambda/{}/{}.zip", self.function.binary, self.sha256)
    }
}

/// SHA-256 over every entry's name, compression method, stored (compressed)
/// bytes and Unix mode, each length-prefixed; timestamps left out.
fn content_digest<R: std::io::Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
) -> zip::result::ZipResult<String> {
    let mut hasher = Sha256::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index_raw(index)?;
        let name = entry.name()?.into_owned();
        let mut stored = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut stored)?;
        let method = format!("{:?}", entry.compression());
        for field in [name.as_bytes(), method.as_bytes(), &stored] {
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field);
        }
        hasher.update(entry.unix_mode().unwrap_or(0).to_le_bytes());
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The account the credentials belong to (STS GetCallerIdentity, which needs
/// no permission): the first call of a deploy, so bad credentials are
/// reported before anything else happens.
pub async fn account_id(sts: &aws_sdk_sts::Client) -> anyhow::Result<String> {
    let identity = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| aws_error::explain(e, "cannot check the AWS credentials"))?;
    identity
        .account()
        .map(str::to_owned)
        .context("STS GetCallerIdentity returned no account id")
}

/// The default bucket for the zips of `account` in `region`.
pub fn default_bucket(account: &str, region: &str) -> String {
    format!("wildrydes-artifacts-{account}-{region}")
}

/// Whether a bucket was there already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketState {
    /// It existed and these credentials may use it.
    Existing,
    /// It was created now.
    Created,
    /// It does not exist (and was not created: a dry run).
    Missing,
}

/// Finds `bucket`, or creates it in `region` (private: all public access
/// blocked) unless `create` is false.
pub async fn ensure_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    region: &str,
    create: bool,
) -> anyhow::Result<BucketState> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => return Ok(BucketState::Existing),
        Err(err) => match err.raw_response().map(|r| r.status().as_u16()) {
            Some(404) => {}
            Some(403) => anyhow::bail!(
                "bucket {bucket} exists but these credentials may not use it (another account's?): choose another with --bucket"
            ),
            _ => {
                return Err(aws_error::explain(
                    err,
                    format!("cannot look up bucket {bucket}"),
                ));
            }
        },
    }
    if !create {
        return Ok(BucketState::Missing);
    }
    let mut request = s3.create_bucket().bucket(bucket);
    // us-east-1 is the one region that refuses its own name as a constraint.
    if region != "us-east-1" {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    match request.send().await {
        Ok(_) => {}
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_bucket_already_owned_by_you()) => {}
        Err(err) => {
            return Err(aws_error::explain(
                err,
                format!("cannot create bucket {bucket}"),
            ));
        }
    }
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            aws_error::explain(e, format!("cannot block public access to bucket {bucket}"))
        })?;
    Ok(BucketState::Created)
}

/// Whether `key` is already in `bucket`.
pub async fn is_uploaded(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> anyhow::Result<bool> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(err)
            if err
                .raw_response()
                .is_some_and(|r| r.status().as_u16() == 404) =>
        {
            Ok(false)
        }
        Err(err) => Err(aws_error::explain(
            err,
            format!("cannot look up s3://{bucket}/{key}"),
        )),
    }
}

/// Uploads `artifact` to `bucket` under its key unless it is there already;
/// says whether it uploaded.
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    artifact: &Artifact,
) -> anyhow::Result<bool> {
    let key = artifact.key();
    if is_uploaded(s3, bucket, &key).await? {
        return Ok(false);
    }
    let body = aws_sdk_s3::primitives::ByteStream::from_path(&artifact.path)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read {} ({e})", artifact.path.display()))?;
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .content_type("application/zip")
        .body(body)
        .send()
        .await
        .map_err(|e| aws_error::explain(e, format!("cannot upload s3://{bucket}/{key}")))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// Writes a zip of one stored entry, dated in `year`.
    fn write_zip(dir: &Path, binary: &str, entry: &str, content: &[u8], year: u16) -> Vec<u8> {
        let path = zip_path(dir, binary);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(zip::DateTime::from_date_and_time(year, 1, 2, 3, 4, 6).unwrap());
        zip.start_file(entry, options).unwrap();
        zip.write_all(content).unwrap();
        zip.finish().unwrap();
        std::fs::read(path).unwrap()
    }

    #[test]
    fn the_key_follows_the_content_not_the_zip_file() {
        let dir = tempfile::tempdir().unwrap();
        let function = FUNCTIONS[0];
        let first_bytes = write_zip(dir.path(), function.binary, "bootstrap", b"one", 2026);
        let first = Artifact::read(dir.path(), function).unwrap();
        assert_eq!(first.sha256.len(), 64);
        assert_eq!(
            first.key(),
            format!("lambda/wildrydes-stream-processor/{}.zip", first.sha256)
        );
        // The same binary zipped again later (a relink that produced the same
        // bytes): another file, the same key.
        let later_bytes = write_zip(dir.path(), function.binary, "bootstrap", b"one", 2027);
        assert_ne!(first_bytes, later_bytes);
        assert_eq!(
            Artifact::read(dir.path(), function).unwrap().key(),
            first.key()
        );
        // Another binary: another key.
        write_zip(dir.path(), function.binary, "bootstrap", b"two", 2026);
        assert_ne!(
            Artifact::read(dir.path(), function).unwrap().key(),
            first.key()
        );
    }

    #[test]
    fn a_zip_without_bootstrap_or_no_zip_is_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let function = FUNCTIONS[1];
        let missing = Artifact::read(dir.path(), function)
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("no zip of wildrydes-aggregator"),
            "{missing}"
        );
        write_zip(dir.path(), function.binary, "main", b"x", 2026);
        let wrong = Artifact::read(dir.path(), function)
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("has no `bootstrap`"), "{wrong}");
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
