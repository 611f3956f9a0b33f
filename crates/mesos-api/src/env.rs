//! The environment DC/OS gives a task for its ports, one rule for the agent that sets it and
//! the frameworks (Marathon) that name the same variables.

/// `PORT0..n`, `PORT` and `PORTS` for a task's host ports, as Mesos and Marathon set them.
pub fn port_env(ports: &[u16]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("PORT{i}"), p.to_string()))
        .collect();
    if let Some(p) = ports.first() {
        env.push(("PORT".into(), p.to_string()));
        let all: Vec<String> = ports.iter().map(u16::to_string).collect();
        env.push(("PORTS".into(), all.join(",")));
    }
    env
}

/// `PORT_<NAME>`: upper case, anything but letters and digits becomes `_`.
pub fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}
