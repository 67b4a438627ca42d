//! `digest`: SHA-256 at the host's native speed (SHA-NI here) for plugins that hash large inputs;
//! in the sandbox the same code runs several times slower, and build-push hashes every layer it
//! builds. Needs no grant: it only sees the bytes the plugin passes. The hashers live in the
//! store's resource table, whose size is capped (`SandboxState`), so a plugin cannot make the
//! host hold unbounded state.

use crate::host::bindings::wharf::plugin::digest::{Host, HostSha256};
use crate::host::sandbox::SandboxState;
use sha2::Digest as _;
use wasmtime::component::Resource;

/// The host side of a `digest.sha256` resource.
pub struct Sha256(sha2::Sha256);

impl Host for SandboxState {}

impl HostSha256 for SandboxState {
    fn new(&mut self) -> wasmtime::Result<Resource<Sha256>> {
        Ok(self.table.push(Sha256(sha2::Sha256::new()))?)
    }

    fn update(&mut self, hasher: Resource<Sha256>, data: Vec<u8>) -> wasmtime::Result<()> {
        self.table.get_mut(&hasher)?.0.update(&data);
        Ok(())
    }

    fn finish(&mut self, hasher: Resource<Sha256>) -> wasmtime::Result<String> {
        Ok(hex::encode(self.table.get(&hasher)?.0.clone().finalize()))
    }

    fn drop(&mut self, hasher: Resource<Sha256>) -> wasmtime::Result<()> {
        self.table.delete(hasher)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_what_it_is_given_in_any_split_and_can_go_on_after_finish() {
        let mut state = SandboxState::new(None, 1 << 20);
        let hasher = HostSha256::new(&mut state).unwrap();
        let rep = hasher.rep();
        let borrow = || Resource::<Sha256>::new_borrow(rep);
        HostSha256::update(&mut state, borrow(), b"ab".to_vec()).unwrap();
        HostSha256::update(&mut state, borrow(), b"c".to_vec()).unwrap();
        // sha256("abc"), FIPS 180-2 appendix B.1.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(HostSha256::finish(&mut state, borrow()).unwrap(), abc);
        HostSha256::update(&mut state, borrow(), Vec::new()).unwrap();
        assert_eq!(HostSha256::finish(&mut state, borrow()).unwrap(), abc, "finish does not reset");
        HostSha256::drop(&mut state, hasher).unwrap();
        assert!(HostSha256::finish(&mut state, borrow()).is_err(), "a dropped hasher is gone");
    }

    #[test]
    fn a_plugin_cannot_hold_more_hashers_than_the_table_allows() {
        let mut state = SandboxState::new(None, 1 << 20);
        let made = (0..100_000).take_while(|_| HostSha256::new(&mut state).is_ok()).count();
        assert_eq!(made, crate::host::sandbox::MAX_RESOURCES, "the refused one traps the plugin");
    }
}
