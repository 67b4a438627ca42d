//! Fargate's valid CPU/memory combinations (checked here because ECS's own error is vague and
//! emulators accept anything).
//!
//! Pure and free of SDK imports on purpose: the engine includes this very file
//! (`engine/src/workflow/inputs.rs`) so `wharf validate` reports an impossible size before anything
//! runs, from the same table the plugin uses.

/// Memory (MiB) Fargate allows for a CPU size: explicit values or an inclusive stepped range.
fn valid_memory(cpu: u32) -> Option<Vec<u32>> {
    let range = |from: u32, to: u32, step: u32| (from..=to).step_by(step as usize).collect();
    Some(match cpu {
        256 => vec![512, 1024, 2048],
        512 => range(1024, 4096, 1024),
        1024 => range(2048, 8192, 1024),
        2048 => range(4096, 16384, 1024),
        4096 => range(8192, 30720, 1024),
        8192 => range(16384, 61440, 4096),
        16384 => range(32768, 122880, 8192),
        _ => return None,
    })
}

/// Why `cpu`/`memory` is not a Fargate size (saying what would be valid), or None when it is.
pub fn size_problem(cpu: u32, memory: u32) -> Option<String> {
    let Some(valid) = valid_memory(cpu) else {
        return Some(format!("cpu {cpu} is not a Fargate size: use 256, 512, 1024, 2048, 4096, 8192 or 16384"));
    };
    if valid.contains(&memory) {
        return None;
    }
    let list = if valid.len() <= 4 {
        valid.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    } else {
        let step = valid[1] - valid[0];
        format!("{} to {} in steps of {step}", valid[0], valid[valid.len() - 1])
    };
    Some(format!("memory {memory} is not valid with cpu {cpu} on Fargate: use {list} (MiB)"))
}
