//! Generates the protobuf messages and tonic services from `proto/backout.proto`.
//!
//! `protoc` comes from the `protoc-bin-vendored` crate, so a fresh machine needs
//! nothing installed by hand.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &["proto/backout.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/backout.proto");
    Ok(())
}
