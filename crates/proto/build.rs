//! Compiles `proto/timpora/v1` with protox (no `protoc` binary) and generates the tonic code.

use std::path::PathBuf;

use prost::Message;

const FILES: &[&str] = &[
    "timpora/v1/common.proto",
    "timpora/v1/imigrasi.proto",
    "timpora/v1/polri.proto",
    "timpora/v1/bp3mi.proto",
    "timpora/v1/disnaker.proto",
    "timpora/v1/desa.proto",
    "timpora/v1/dinsos.proto",
    "timpora/v1/kejaksaan.proto",
    "timpora/v1/case.proto",
    "timpora/v1/event.proto",
    "timpora/v1/alert.proto",
    "timpora/v1/bus.proto",
    "timpora/v1/audit.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let fds = protox::compile(FILES, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("timpora_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .codec_path("crate::codec::StrictCodec")
        .compile_fds(fds)?;
    Ok(())
}
