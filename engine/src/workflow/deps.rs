//! The step dependency graph: cycle detection (with a diagnostic on the edge that closes each
//! cycle) and a deterministic topological order.

use std::collections::{BTreeSet, HashMap};

use super::Step;
use super::diagnostic::{Reporter, Span};

/// One "needs" edge from a step to `to`, and where it was written.
pub(crate) struct Edge {
    pub to: String,
    pub span: Span,
    /// The template that implied it (`${steps.a.outputs.x}`), or `None` for an explicit `needs` entry.
    pub via: Option<String>,
}

/// Reports every cycle found by a depth-first search in file order. `ids[i]` is step i's id (None
/// when it had none) and `edges[i]` its dependencies; edges to unknown steps and self-edges were
/// reported already and are skipped here.
pub(crate) fn check_cycles(rep: &mut Reporter, ids: &[Option<&str>], edges: &[Vec<Edge>]) {
    let mut index = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        if let Some(id) = id {
            index.entry(*id).or_insert(i);
        }
    }
    let mut search = Search { ids, edges, index, state: vec![State::New; ids.len()], stack: Vec::new() };
    for i in 0..ids.len() {
        if search.state[i] == State::New {
            search.visit(rep, i);
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    New,
    OnStack,
    Done,
}

struct Search<'a> {
    ids: &'a [Option<&'a str>],
    edges: &'a [Vec<Edge>],
    index: HashMap<&'a str, usize>,
    state: Vec<State>,
    stack: Vec<usize>,
}

impl Search<'_> {
    fn visit(&mut self, rep: &mut Reporter, u: usize) {
        self.state[u] = State::OnStack;
        self.stack.push(u);
        let edges = self.edges;
        for e in &edges[u] {
            let Some(&v) = self.index.get(e.to.as_str()) else { continue };
            if v == u {
                continue;
            }
            match self.state[v] {
                State::New => self.visit(rep, v),
                State::OnStack => {
                    // The stack from v to u is a path of "needs" edges; this edge closes it.
                    let pos = self.stack.iter().position(|&s| s == v).expect("on stack");
                    let ids = self.ids;
                    let name = |i: usize| ids[i].unwrap_or("?");
                    let mut cycle: Vec<&str> = self.stack[pos..].iter().map(|&i| name(i)).collect();
                    cycle.push(name(v));
                    let hint = match &e.via {
                        None => "each arrow means \"needs\"; remove one of these dependencies".to_string(),
                        Some(t) => format!(
                            "each arrow means \"needs\"; `{}` needs `{}` because it uses `{t}`",
                            name(u),
                            name(v)
                        ),
                    };
                    rep.error(e.span.clone(), format!("dependency cycle: {}", cycle.join(" -> ")), Some(hint));
                }
                State::Done => {}
            }
        }
        self.stack.pop();
        self.state[u] = State::Done;
    }
}

/// Kahn's algorithm, always taking the earliest ready step in file order, so the order is stable
/// and matches the file where dependencies allow. Steps caught in a cycle (impossible after
/// validation) are appended in file order rather than dropped.
pub(crate) fn topo_order(steps: &[Step]) -> Vec<&str> {
    let index: HashMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    let mut indegree = vec![0usize; steps.len()];
    let mut dependents = vec![Vec::new(); steps.len()];
    for (i, s) in steps.iter().enumerate() {
        for n in &s.needs {
            if let Some(&j) = index.get(n.as_str()) {
                indegree[i] += 1;
                dependents[j].push(i);
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..steps.len()).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(steps.len());
    let mut placed = vec![false; steps.len()];
    while let Some(i) = ready.pop_first() {
        order.push(steps[i].id.as_str());
        placed[i] = true;
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.insert(d);
            }
        }
    }
    order.extend(steps.iter().enumerate().filter(|(i, _)| !placed[*i]).map(|(_, s)| s.id.as_str()));
    order
}
