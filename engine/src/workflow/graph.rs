//! Dependency graphs for `wharf graph`: Mermaid (renders in GitHub markdown) and Graphviz DOT.
//! Nodes are labelled `id (plugin)`; edges run from a dependency to the step that needs it.

use std::collections::HashMap;

use super::{PluginRef, Workflow};

fn plugin_label(p: &PluginRef) -> String {
    match p {
        PluginRef::Builtin(name) => name.clone(),
        // The file name is enough to recognise a component; full paths make unreadable nodes.
        PluginRef::Path(path) => {
            path.file_name().map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into_owned())
        }
    }
}

/// Mermaid node ids are positional (`s0`, `s1`, ...): step ids may contain `-`, which Mermaid
/// can read as part of an arrow, and any escaping of it could collide with another id.
pub fn mermaid(wf: &Workflow) -> String {
    let node: HashMap<&str, String> =
        wf.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), format!("s{i}"))).collect();
    let mut out = String::from("flowchart TD\n");
    for s in &wf.steps {
        let label = format!("{} ({})", s.id, plugin_label(&s.plugin)).replace('"', "#quot;");
        out.push_str(&format!("    {}[\"{label}\"]\n", node[s.id.as_str()]));
    }
    for s in &wf.steps {
        for n in s.needs.iter().filter_map(|n| node.get(n.as_str())) {
            out.push_str(&format!("    {n} --> {}\n", node[s.id.as_str()]));
        }
    }
    out
}

fn dot_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn dot(wf: &Workflow) -> String {
    let mut out = format!("digraph {} {{\n    rankdir=TB;\n    node [shape=box];\n", dot_quote(&wf.name));
    for s in &wf.steps {
        let label = format!("{} ({})", s.id, plugin_label(&s.plugin));
        out.push_str(&format!("    {} [label={}];\n", dot_quote(&s.id), dot_quote(&label)));
    }
    for s in &wf.steps {
        for n in &s.needs {
            out.push_str(&format!("    {} -> {};\n", dot_quote(n), dot_quote(&s.id)));
        }
    }
    out.push_str("}\n");
    out
}
