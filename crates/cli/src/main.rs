//! timpora
fn main() {}
