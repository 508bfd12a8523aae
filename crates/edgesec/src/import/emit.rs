//! The converted config as TOML text, in a fixed, readable order, with the import's notes as
//! comments at the top.

use toml::Value;

#[derive(Debug, Default)]
pub struct Doc {
    /// (table name, "" for the top level; its keys in order).
    sections: Vec<(String, Vec<(String, Value)>)>,
}

impl Doc {
    pub fn set(&mut self, section: &str, key: &str, value: impl Into<Value>) {
        let value = value.into();
        let idx = match self.sections.iter().position(|(n, _)| n == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.to_owned(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let entries = &mut self.sections[idx].1;
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value,
            None => entries.push((key.to_owned(), value)),
        }
    }

    pub fn render(&self, header: &[String]) -> String {
        let mut out = String::new();
        for h in header {
            if h.is_empty() {
                out.push_str("#\n");
            } else {
                out.push_str(&format!("# {h}\n"));
            }
        }
        let mut sections: Vec<&(String, Vec<(String, Value)>)> = self.sections.iter().collect();
        // the top level first, then tables in the order they were first set
        sections.sort_by_key(|(n, _)| !n.is_empty());
        for (name, entries) in sections {
            if !name.is_empty() {
                out.push_str(&format!("\n[{name}]\n"));
            } else if !out.is_empty() {
                out.push('\n');
            }
            for (k, v) in entries {
                out.push_str(&format!("{} = {}\n", key(k), value(v)));
            }
        }
        out
    }
}

fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_owned()
    } else {
        Value::String(k.to_owned()).to_string()
    }
}

fn value(v: &Value) -> String {
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_in_order_with_quoting() {
        let mut d = Doc::default();
        d.set("provisioning", "source", "manual");
        d.set("", "hostname", "gw \"1\"");
        d.set("agent.env", "A.B", "x");
        d.set("", "state_dir", "/var/lib/edgesec");
        let text = d.render(&["converted".into(), String::new()]);
        assert_eq!(
            text,
            "# converted\n#\n\nhostname = 'gw \"1\"'\nstate_dir = \"/var/lib/edgesec\"\n\n\
             [provisioning]\nsource = \"manual\"\n\n[agent.env]\n\"A.B\" = \"x\"\n"
        );
        let back: toml::Table = text.parse().unwrap();
        assert_eq!(back["agent"]["env"]["A.B"].as_str(), Some("x"));
    }
}
