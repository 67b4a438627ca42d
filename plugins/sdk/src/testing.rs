//! Unit-testing plugins on your machine with plain `cargo test`: a fake wharf host.
//!
//! Compiled for anything but wasm, every capability function (`ecs::describe_cluster`, ...) is
//! answered by the [`FakeHost`] the current test thread installed, instead of the real host. The
//! test decides the answers (canned values, injected errors), runs the step through the same
//! input/output JSON path the real host uses, and asserts on the outputs and on the recorded
//! calls. A call the test did not configure panics with the method to add, so a test also proves
//! what a step does *not* do (e.g. "adopts the cluster without creating one").

use crate::bindings::wharf::plugin::types::{Error as WitError, ErrorKind, StepContext};
use crate::{Context, Error, Step};
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// One capability call the plugin made, with its arguments in `Debug` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `interface::function`, e.g. `ecs::create_cluster`.
    pub function: &'static str,
    /// Each argument, `Debug`-formatted (`"\"web\""` for the string `web`).
    pub args: Vec<String>,
}

impl std::fmt::Display for Call {
    /// `ecs::describe_cluster("web")`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.function, self.args.join(", "))
    }
}

#[derive(Default)]
struct State {
    handlers: HashMap<&'static str, Box<dyn Any>>,
    calls: Vec<Call>,
    logs: Vec<String>,
    /// The running step's context and its `run_part`, for [`crate::parallel::run_all`]; `None`
    /// inside a part (a part cannot start parts, as on the host).
    parts: Option<(Context, PartFn)>,
}

type PartFn = fn(&Context, &str, &str) -> Result<String, Error>;

thread_local! {
    static CURRENT: RefCell<Option<Rc<RefCell<State>>>> = const { RefCell::new(None) };
}

/// An in-process stand-in for the wharf host, installed for the current thread (each `#[test]`
/// runs on its own thread) from [`FakeHost::new`] until it is dropped.
///
/// Configure each capability function the step may call with `on_<function>` (e.g.
/// [`on_describe_cluster`](FakeHost::on_describe_cluster)), run the step with [`run`](FakeHost::run),
/// then inspect [`calls`](FakeHost::calls) and [`logs`](FakeHost::logs).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use serde_json::json;
/// use wharf_plugin_sdk::{Context, Error, Step, ecs, testing::FakeHost};
///
/// #[derive(Deserialize)]
/// struct Input { cluster: String }
/// #[derive(Serialize)]
/// struct Output { exists: bool }
///
/// struct ClusterExists;
/// impl Step for ClusterExists {
///     type Input = Input;
///     type Output = Output;
///     const NAME: &'static str = "cluster-exists";
///     const DESCRIPTION: &'static str = "Says whether an ECS cluster exists.";
///     const GRANTS: &'static [&'static str] = &["ecs:DescribeClusters ${with.cluster}"];
///     fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
///         Ok(Output { exists: ecs::describe_cluster(&input.cluster)?.is_some() })
///     }
/// }
///
/// let host = FakeHost::new();
/// host.on_describe_cluster(|name| {
///     assert_eq!(name, "web");
///     Err(Error::retryable("ThrottlingException", "slow down"))
/// });
/// let err = host.run::<ClusterExists>(json!({ "cluster": "web" })).unwrap_err();
/// assert!(err.is_retryable());
/// assert_eq!(host.calls()[0].to_string(), r#"ecs::describe_cluster("web")"#);
/// ```
pub struct FakeHost {
    state: Rc<RefCell<State>>,
}

impl FakeHost {
    /// A fake host with nothing configured, installed for this thread (replacing an earlier one).
    ///
    /// ```
    /// let host = wharf_plugin_sdk::testing::FakeHost::new();
    /// assert!(host.calls().is_empty());
    /// ```
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let state = Rc::new(RefCell::new(State::default()));
        CURRENT.with(|c| *c.borrow_mut() = Some(state.clone()));
        FakeHost { state }
    }

    /// Runs one attempt of step `S` with these `with` inputs (a JSON object), through the same
    /// JSON decoding and encoding as the real host, using [`context()`]. Returns the outputs as
    /// later steps would see them (`${steps.ID.outputs.NAME}`).
    ///
    /// See [`FakeHost`] for an example.
    pub fn run<S: Step>(&self, inputs: serde_json::Value) -> Result<serde_json::Value, Error> {
        self.run_with::<S>(&context(), inputs)
    }

    /// [`run`](FakeHost::run) with a given context, e.g. a resumed attempt (`in_doubt`) or a
    /// `wharf plan` (`planning`).
    ///
    /// ```ignore
    /// let ctx = Context { in_doubt: true, ..testing::context() };
    /// host.run_with::<MyStep>(&ctx, json!({ "name": "web" }))?;
    /// ```
    pub fn run_with<S: Step>(&self, ctx: &Context, inputs: serde_json::Value) -> Result<serde_json::Value, Error> {
        let context = StepContext {
            run_id: ctx.run_id.clone(),
            step_id: ctx.step_id.clone(),
            attempt: ctx.attempt,
            idempotency_key: ctx.idempotency_key.clone(),
            in_doubt: ctx.in_doubt,
            planning: ctx.planning,
            inputs: inputs.to_string(),
        };
        self.state.borrow_mut().parts = Some((ctx.clone(), S::run_part));
        let output = crate::step::run::<S>(context);
        self.state.borrow_mut().parts = None;
        let output = output?;
        Ok(serde_json::from_str(&output).expect("the SDK encodes outputs as JSON"))
    }

    /// Every capability call made so far, in order (log lines are in [`logs`](FakeHost::logs)).
    ///
    /// ```
    /// # use wharf_plugin_sdk::{s3, testing::FakeHost};
    /// let host = FakeHost::new();
    /// host.on_get_object_info(|_, _| Ok(None));
    /// s3::get_object_info("bucket", "key").unwrap();
    /// assert_eq!(host.calls()[0].to_string(), r#"s3::get_object_info("bucket", "key")"#);
    /// ```
    pub fn calls(&self) -> Vec<Call> {
        self.state.borrow().calls.clone()
    }

    /// The calls to one function (`"ecs::create_cluster"`), in order.
    ///
    /// ```
    /// # use wharf_plugin_sdk::testing::FakeHost;
    /// let host = FakeHost::new();
    /// assert!(host.calls_to("ecs::create_cluster").is_empty());
    /// ```
    pub fn calls_to(&self, function: &str) -> Vec<Call> {
        self.state.borrow().calls.iter().filter(|c| c.function == function).cloned().collect()
    }

    /// The step's log lines as `level: message` (`info: ...`, `progress: ...`).
    ///
    /// ```
    /// # use wharf_plugin_sdk::testing::FakeHost;
    /// let host = FakeHost::new();
    /// wharf_plugin_sdk::info!("{} ready", "web");
    /// assert_eq!(host.logs(), ["info: web ready"]);
    /// ```
    pub fn logs(&self) -> Vec<String> {
        self.state.borrow().logs.clone()
    }

    pub(crate) fn set_handler<H: 'static>(&self, function: &'static str, handler: H) -> &Self {
        self.state.borrow_mut().handlers.insert(function, Box::new(handler));
        self
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        CURRENT.with(|c| {
            let mut current = c.borrow_mut();
            if current.as_ref().is_some_and(|s| Rc::ptr_eq(s, &self.state)) {
                *current = None;
            }
        });
    }
}

/// The context [`FakeHost::run`] uses: first attempt, not in doubt, not planning.
///
/// ```
/// use wharf_plugin_sdk::{Context, testing};
/// let resumed = Context { in_doubt: true, attempt: 2, ..testing::context() };
/// assert_eq!(resumed.step_id, "test-step");
/// ```
pub fn context() -> Context {
    Context {
        run_id: "test-run".into(),
        step_id: "test-step".into(),
        attempt: 1,
        idempotency_key: "test-idempotency-key".into(),
        in_doubt: false,
        planning: false,
    }
}

/// The error the real host returns for a call outside the step's grants, to inject in a handler.
///
/// ```
/// use wharf_plugin_sdk::{ecs, testing::{self, FakeHost}};
/// let host = FakeHost::new();
/// host.on_describe_cluster(|name| Err(testing::denied(&format!("ecs:DescribeClusters {name}"))));
/// assert_eq!(ecs::describe_cluster("web").unwrap_err().code, "GrantMissing");
/// ```
pub fn denied(grant_line: &str) -> Error {
    Error::new(ErrorKind::Denied, "GrantMissing", format!("the step has no grant for this call; add \"{grant_line}\""))
}

fn current() -> Option<Rc<RefCell<State>>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Answers one capability call from the installed fake, recording it. The handler is taken out
/// while it runs so it may itself call capabilities.
#[doc(hidden)]
pub fn dispatch<H: 'static, T>(
    function: &'static str,
    method: &str,
    args: Vec<String>,
    call: impl FnOnce(&mut H) -> Result<T, Error>,
) -> Result<T, WitError> {
    let Some(state) = current() else {
        panic!(
            "the plugin called {function}({}) outside the wharf host. In unit tests, create a \
             `wharf_plugin_sdk::testing::FakeHost` first and configure it with `host.{method}(...)`",
            args.join(", ")
        );
    };
    let recorded = Call { function, args };
    state.borrow_mut().calls.push(recorded.clone());
    let Some(mut handler) = state.borrow_mut().handlers.remove(function) else {
        panic!(
            "FakeHost: the plugin called {recorded}, which this test did not configure; add `host.{method}(|..| ...)`"
        );
    };
    let result = call(handler.downcast_mut::<H>().expect("handlers are stored with their function's type"));
    state.borrow_mut().handlers.entry(function).or_insert(handler);
    result.map_err(|e| e.0)
}

/// Records (and prints, for `cargo test -- --nocapture`) a log line; works with no fake host too.
/// [`crate::parallel::run_all`] off wasm: the parts one after the other, in order, each through
/// the step's `run_part` with the step's context, with the host's limits.
pub(crate) fn run_parts(parts: &[crate::parallel::Part]) -> Vec<Result<String, Error>> {
    let state = current().expect("parallel::run_all called outside a FakeHost::run");
    let refused = |why: &str| parts.iter().map(|_| Err(Error::permanent("PartsRefused", why.to_string()))).collect();
    if parts.len() > crate::parallel::MAX_PARTS {
        return refused(&format!("at most {} parts at once, not {}", crate::parallel::MAX_PARTS, parts.len()));
    }
    let Some((ctx, run_part)) = state.borrow_mut().parts.take() else {
        return refused("a part cannot start parts of its own");
    };
    let results = parts.iter().map(|p| run_part(&ctx, &p.name, &p.input)).collect();
    state.borrow_mut().parts = Some((ctx, run_part));
    results
}

pub(crate) fn log(level: &str, message: &str) {
    eprintln!("[{level}] {message}");
    if let Some(state) = current() {
        state.borrow_mut().logs.push(format!("{level}: {message}"));
    }
}
