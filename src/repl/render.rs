//! How the REPL shows values: a container as name, status and addresses, an array of containers
//! as an aligned table, maps and arrays on one line when short and one item per line otherwise.

use rhai::{Array, Dynamic, Map};

use crate::api::{Container, Summary};

/// Width under which a map or array stays on one line.
const ONE_LINE: usize = 72;

/// ANSI styling, or none (not a terminal, or `NO_COLOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
    pub fn red(self, text: &str) -> String {
        self.paint("1;31", text)
    }
    pub fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }
    fn green(self, text: &str) -> String {
        self.paint("32", text)
    }
    fn status(self, status: &str) -> String {
        match status {
            "up" => self.green(status),
            "gone" => self.red(status),
            _ => self.dim(status),
        }
    }
}

/// The text shown for an evaluation result (never called for `()`).
pub fn value(v: &Dynamic, style: Style) -> String {
    if let Some(c) = v.read_lock::<Container>() {
        return container(&c.summary(), style);
    }
    if let Some(array) = v.read_lock::<Array>()
        && !array.is_empty()
        && array.iter().all(|x| x.is::<Container>())
    {
        let rows: Vec<Summary> = array
            .iter()
            .filter_map(|x| x.read_lock::<Container>().map(|c| c.summary()))
            .collect();
        return table(&rows, style);
    }
    nested(v, 0, style)
}

/// One container: `web  up  ip 10.233.9.2  host 10.233.9.1`.
pub fn container(s: &Summary, style: Style) -> String {
    let mut out = format!("{}  {}", style.bold(&s.name), style.status(&s.status));
    if let Some(ip) = &s.ip {
        out.push_str(&format!("  ip {ip}"));
    }
    if let Some(host) = &s.host_ip {
        out.push_str(&format!("  host {host}"));
    }
    out
}

/// Containers as an aligned table with a header.
pub fn table(rows: &[Summary], style: Style) -> String {
    let header = ["NAME", "STATUS", "IP", "HOST IP"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.status.clone(),
                r.ip.clone().unwrap_or_else(|| "-".into()),
                r.host_ip.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cols: [String; 4], paint: &dyn Fn(usize, &str) -> String| -> String {
        let mut out = String::new();
        for (i, cell) in cols.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            out.push_str(&paint(i, cell));
            if i + 1 < cols.len() {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out
    };
    let mut lines = vec![line(header.map(String::from), &|_, h| style.bold(h))];
    for row in cells {
        lines.push(line(row, &|i, cell| {
            if i == 1 {
                style.status(cell)
            } else {
                cell.to_string()
            }
        }));
    }
    lines.join("\n")
}

/// A value inside a map or array, or any non-container value; `depth` is the indent level.
fn nested(v: &Dynamic, depth: usize, style: Style) -> String {
    if let Some(c) = v.read_lock::<Container>() {
        return format!("container({:?})", c.name());
    }
    if let Some(array) = v.read_lock::<Array>() {
        let items: Vec<String> = array.iter().map(|x| nested(x, depth + 1, style)).collect();
        return block("[", "]", items, depth);
    }
    if let Some(map) = v.read_lock::<Map>() {
        return map_text(&map, depth, style);
    }
    if v.is_string() {
        return format!("{v:?}");
    }
    if v.is_unit() {
        return "()".into();
    }
    v.to_string()
}

fn map_text(map: &Map, depth: usize, style: Style) -> String {
    let items: Vec<String> = map
        .iter()
        .map(|(k, x)| {
            let key = if k.chars().all(|c| c.is_alphanumeric() || c == '_') && !k.is_empty() {
                k.to_string()
            } else {
                format!("{:?}", k.as_str())
            };
            format!("{key}: {}", nested(x, depth + 1, style))
        })
        .collect();
    block("#{", "}", items, depth)
}

/// `open a, b close` when it fits on a line, else one item per line, indented.
fn block(open: &str, close: &str, items: Vec<String>, depth: usize) -> String {
    if items.is_empty() {
        return format!("{open}{close}");
    }
    let flat = format!("{open}{}{close}", items.join(", "));
    if flat.chars().count() + depth * 2 <= ONE_LINE && !flat.contains('\n') {
        return flat;
    }
    let indent = "  ".repeat(depth + 1);
    let mut out = format!("{open}\n");
    for item in items {
        out.push_str(&format!("{indent}{item},\n"));
    }
    out.push_str(&"  ".repeat(depth));
    out.push_str(close);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Style = Style { colour: false };

    fn summary(name: &str, status: &str, ip: Option<&str>) -> Summary {
        Summary {
            name: name.into(),
            status: status.into(),
            ip: ip.map(String::from),
            host_ip: ip.map(|_| "10.233.0.1".to_string()),
        }
    }

    #[test]
    fn table_is_aligned() {
        let rows = [
            summary("web", "up", Some("10.233.0.2")),
            summary("database", "down", None),
        ];
        assert_eq!(
            table(&rows, PLAIN),
            "NAME      STATUS  IP          HOST IP\n\
             web       up      10.233.0.2  10.233.0.1\n\
             database  down    -           -"
        );
    }

    #[test]
    fn coloured_table_keeps_alignment() {
        let rows = [summary("a", "up", None), summary("bbbb", "down", None)];
        let text = table(&rows, Style { colour: true });
        let strip = |s: &str| {
            let mut out = String::new();
            let mut esc = false;
            for c in s.chars() {
                match (esc, c) {
                    (_, '\x1b') => esc = true,
                    (true, 'm') => esc = false,
                    (true, _) => {}
                    (false, c) => out.push(c),
                }
            }
            out
        };
        assert_eq!(strip(&text), table(&rows, PLAIN));
    }

    #[test]
    fn container_line() {
        assert_eq!(
            container(&summary("web", "up", Some("10.233.0.2")), PLAIN),
            "web  up  ip 10.233.0.2  host 10.233.0.1"
        );
    }

    #[test]
    fn short_map_on_one_line_long_map_per_line() {
        let mut map = Map::new();
        map.insert("status".into(), Dynamic::from(0_i64));
        map.insert("stdout".into(), Dynamic::from("hi\n".to_string()));
        assert_eq!(value(&map.into(), PLAIN), r#"#{status: 0, stdout: "hi\n"}"#);

        let mut map = Map::new();
        map.insert("a".into(), Dynamic::from("x".repeat(40)));
        map.insert("b".into(), Dynamic::from("y".repeat(40)));
        let text = value(&map.into(), PLAIN);
        assert_eq!(
            text,
            format!(
                "#{{\n  a: \"{}\",\n  b: \"{}\",\n}}",
                "x".repeat(40),
                "y".repeat(40)
            )
        );
    }

    #[test]
    fn arrays_and_scalars() {
        let array: Array = vec![1_i64.into(), "a".into(), true.into()];
        assert_eq!(value(&array.into(), PLAIN), r#"[1, "a", true]"#);
        assert_eq!(value(&Array::new().into(), PLAIN), "[]");
        assert_eq!(value(&Dynamic::from(2.5_f64), PLAIN), "2.5");
    }
}
