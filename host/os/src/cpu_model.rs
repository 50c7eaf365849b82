//! The CPU model as the operating system reports it (`/proc/cpuinfo` on
//! Linux). Host-reported, not attested: cost records say so.

/// The CPU model name, or `unknown`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo").map(|text| from_cpuinfo(&text)).unwrap_or_else(|_| "unknown".into())
}

/// The model in a `/proc/cpuinfo` text: x86's `model name`, else arm64's
/// implementer and part numbers.
pub fn from_cpuinfo(text: &str) -> String {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    };
    if let Some(model) = field("model name") {
        return model;
    }
    match (field("CPU implementer"), field("CPU part")) {
        (Some(implementer), Some(part)) => format!("arm implementer {implementer} part {part}"),
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_come_from_either_architecture() {
        assert_eq!(from_cpuinfo("processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\nflags\t: fpu\n"), "Intel(R) Xeon(R)");
        assert_eq!(
            from_cpuinfo("processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n"),
            "arm implementer 0x41 part 0xd0c"
        );
        assert_eq!(from_cpuinfo(""), "unknown");
    }
}
