//! The one dispatch point every capability function goes through.
//!
//! Compiled for `wasm32`, a capability function is the WIT import (a call into the wharf host).
//! Compiled for anything else (`cargo test` on your machine), it is answered by the
//! [`FakeHost`](crate::testing::FakeHost) the test installed, which also records the call.

/// Defines the typed capability functions of one WIT interface and, off wasm, the
/// `FakeHost::on_<function>` method that answers them in tests.
macro_rules! host_functions {
    ($iface:ident: $(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ok:ty, fake $on:ident;
    )*) => {
        $(
            $(#[$doc])*
            pub fn $name($($arg: $ty),*) -> Result<$ok, $crate::bindings::wharf::plugin::types::Error> {
                #[cfg(target_arch = "wasm32")]
                {
                    $crate::bindings::wharf::plugin::$iface::$name($($arg),*)
                }
                #[cfg(not(target_arch = "wasm32"))]
                {
                    $crate::testing::dispatch(
                        concat!(stringify!($iface), "::", stringify!($name)),
                        stringify!($on),
                        vec![$(format!("{:?}", $arg)),*],
                        |handler: &mut Box<dyn FnMut($($ty),*) -> Result<$ok, $crate::Error>>| handler($($arg),*),
                    )
                }
            }
        )*

        #[cfg(not(target_arch = "wasm32"))]
        impl $crate::testing::FakeHost {
            $(
                #[doc = concat!(
                    "Answers the plugin's calls to [`", stringify!($iface), "::", stringify!($name), "`](crate::",
                    stringify!($iface), "::", stringify!($name), ") with `handler`, which gets the same arguments. ",
                    "Return canned values, or `Err(Error::retryable(..))` / `Err(testing::denied(..))` to inject ",
                    "failures; a `move` closure with state can answer differently each time. Replaces an earlier ",
                    "handler for the same function.\n\nSee [`FakeHost`](crate::testing::FakeHost) for an example."
                )]
                pub fn $on(&self, handler: impl FnMut($($ty),*) -> Result<$ok, $crate::Error> + 'static) -> &Self {
                    let boxed: Box<dyn FnMut($($ty),*) -> Result<$ok, $crate::Error>> = Box::new(handler);
                    self.set_handler(concat!(stringify!($iface), "::", stringify!($name)), boxed)
                }
            )*
        }
    };
}
