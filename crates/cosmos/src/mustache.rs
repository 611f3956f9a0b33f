//! Mustache templates, as Cosmos renders a package's `marathon.v2AppMustacheTemplate`.
//!
//! The language is the mustache spec's (interpolation, sections, inverted sections, comments,
//! set delimiters, dotted names, the implicit iterator, standalone lines); partials and lambdas
//! have no meaning for a package template and are refused. Values come from JSON, and where the
//! spec leaves a JSON value's text open this follows mustache.java, which Cosmos uses: `true`
//! and `false` render as words, numbers as JSON writes them, and `""` is falsy in a section.
//! Objects and arrays interpolate as their JSON text. With [`Escape::Html`] (the spec's
//! rule) `{{x}}` escapes `& < > " '` and `{{{x}}}` and `{{& x}}` do not; with
//! [`Escape::None`], which Cosmos uses for package templates (what it renders is JSON, not
//! HTML), no tag escapes.
//!
//! Why not a crate: `mustache` 0.9 (unmaintained since 2019) panics when a template
//! interpolates a boolean or an object, which package options do, and `ramhorns` renders only
//! compile-time types, not the JSON options a user sends.

use serde_json::Value;

/// Why a template cannot be compiled.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A tag opens and never closes.
    #[error("a tag opened at byte {0} is not closed")]
    UnclosedTag(usize),
    /// A section opens and never closes.
    #[error("the section {0:?} is not closed")]
    UnclosedSection(String),
    /// A closing tag names another section than the open one.
    #[error("{{{{/{found}}}}} closes no open section (open: {open:?})")]
    Mismatch {
        /// The name in the closing tag.
        found: String,
        /// The innermost open section, if any.
        open: Option<String>,
    },
    /// A set-delimiters tag without two delimiters.
    #[error("the delimiters at byte {0} are not two words")]
    BadDelimiters(usize),
    /// A partial, which a package template cannot have.
    #[error("partials are not supported in package templates ({0:?})")]
    Partial(String),
    /// A tag without a name.
    #[error("an empty tag at byte {0}")]
    EmptyTag(usize),
    /// Sections nested deeper than [`MAX_DEPTH`].
    #[error("sections are nested deeper than {MAX_DEPTH} at byte {0}")]
    TooDeep(usize),
}

/// The deepest section nesting a template may have: compiling, rendering and dropping a
/// template recurse once per level, and real templates nest a few levels.
pub const MAX_DEPTH: usize = 64;

/// How `{{x}}` escapes what it interpolates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// For HTML, as the mustache spec has it.
    Html,
    /// Not at all.
    None,
}

/// A compiled template.
#[derive(Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Var {
        path: Vec<String>,
        escape: bool,
    },
    Section {
        path: Vec<String>,
        inverted: bool,
        children: Vec<Node>,
    },
}

/// A tag's kind: its sigil.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sigil {
    Escaped,
    Triple,
    Ampersand,
    Section,
    Inverted,
    Close,
    Comment,
    Delimiters,
    Partial,
}

impl Sigil {
    fn of(c: Option<char>) -> Sigil {
        match c {
            Some('{') => Sigil::Triple,
            Some('&') => Sigil::Ampersand,
            Some('#') => Sigil::Section,
            Some('^') => Sigil::Inverted,
            Some('/') => Sigil::Close,
            Some('!') => Sigil::Comment,
            Some('=') => Sigil::Delimiters,
            Some('>') => Sigil::Partial,
            _ => Sigil::Escaped,
        }
    }

    /// Tags that leave nothing in the output, so a line holding only one of them disappears.
    fn may_stand_alone(self) -> bool {
        !matches!(self, Sigil::Escaped | Sigil::Triple | Sigil::Ampersand)
    }
}

fn path_of(name: &str) -> Vec<String> {
    if name == "." {
        vec![".".into()]
    } else {
        name.split('.').map(str::to_string).collect()
    }
}

/// Whether `s` is only spaces and tabs.
fn blank(s: &str) -> bool {
    s.chars().all(|c| c == ' ' || c == '\t')
}

/// Compiles `source`.
pub fn compile(source: &str) -> Result<Template, TemplateError> {
    let (mut open, mut close) = ("{{".to_string(), "}}".to_string());
    // The sections being read: their name, inversion and the nodes before them.
    let mut stack: Vec<(String, bool, Vec<Node>)> = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut pos = 0;
    while let Some(found) = source[pos..].find(&open) {
        let tag_start = pos + found;
        let after_open = tag_start + open.len();
        let sigil = Sigil::of(source[after_open..].chars().next());
        let name_start = if sigil == Sigil::Escaped {
            after_open
        } else {
            after_open + 1
        };
        let closing = if sigil == Sigil::Triple {
            format!("}}{close}")
        } else {
            close.clone()
        };
        let end = source[name_start..]
            .find(&closing)
            .ok_or(TemplateError::UnclosedTag(tag_start))?;
        let inner = &source[name_start..name_start + end];
        let tag_end = name_start + end + closing.len();

        // A standalone tag: alone on its line but for blanks. The line goes entirely.
        let line_start = source[..tag_start].rfind('\n').map_or(0, |i| i + 1);
        let rest = &source[tag_end..];
        let line_rest = rest.find('\n').map_or(rest, |i| &rest[..i]);
        let standalone = sigil.may_stand_alone()
            && line_start >= pos
            && blank(&source[line_start..tag_start])
            && blank(line_rest.trim_end_matches('\r'));
        let (text_end, next) = if standalone {
            let next = rest.find('\n').map_or(source.len(), |i| tag_end + i + 1);
            (line_start, next)
        } else {
            (tag_start, tag_end)
        };
        if text_end > pos {
            nodes.push(Node::Text(source[pos..text_end].to_string()));
        }
        pos = next;

        let name = inner.trim();
        match sigil {
            Sigil::Comment => {}
            Sigil::Delimiters => {
                let spec = name
                    .strip_suffix('=')
                    .ok_or(TemplateError::BadDelimiters(tag_start))?;
                let mut words = spec.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some(o), Some(c), None) if !o.contains('=') && !c.contains('=') => {
                        (open, close) = (o.to_string(), c.to_string());
                    }
                    _ => return Err(TemplateError::BadDelimiters(tag_start)),
                }
            }
            Sigil::Partial => return Err(TemplateError::Partial(name.into())),
            _ if name.is_empty() => return Err(TemplateError::EmptyTag(tag_start)),
            Sigil::Escaped | Sigil::Triple | Sigil::Ampersand => nodes.push(Node::Var {
                path: path_of(name),
                escape: sigil == Sigil::Escaped,
            }),
            Sigil::Section | Sigil::Inverted => {
                if stack.len() >= MAX_DEPTH {
                    return Err(TemplateError::TooDeep(tag_start));
                }
                let before = std::mem::take(&mut nodes);
                stack.push((name.to_string(), sigil == Sigil::Inverted, before));
            }
            Sigil::Close => match stack.pop() {
                Some((open_name, inverted, before)) if open_name == name => {
                    let children = std::mem::replace(&mut nodes, before);
                    nodes.push(Node::Section {
                        path: path_of(name),
                        inverted,
                        children,
                    });
                }
                other => {
                    return Err(TemplateError::Mismatch {
                        found: name.into(),
                        open: other.map(|(n, _, _)| n),
                    })
                }
            },
        }
    }
    if pos < source.len() {
        nodes.push(Node::Text(source[pos..].to_string()));
    }
    if let Some((name, _, _)) = stack.pop() {
        return Err(TemplateError::UnclosedSection(name));
    }
    Ok(Template { nodes })
}

impl Template {
    /// Renders with `data` as the outermost context.
    pub fn render(&self, data: &Value, escape: Escape) -> String {
        let mut out = String::new();
        let mut stack = vec![data];
        render_nodes(&self.nodes, &mut stack, escape, &mut out);
        out
    }
}

/// Looks a dotted name up: its first part in the innermost context that has it, the rest
/// inside that value only (the spec's rule: a broken chain is missing, not searched further).
fn lookup<'a>(stack: &[&'a Value], path: &[String]) -> Option<&'a Value> {
    if path.len() == 1 && path[0] == "." {
        return stack.last().copied();
    }
    let (first, rest) = path.split_first()?;
    let mut value = stack.iter().rev().find_map(|ctx| ctx.get(first.as_str()))?;
    for part in rest {
        value = value.get(part.as_str())?;
    }
    Some(value)
}

fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn render_nodes<'a>(nodes: &'a [Node], stack: &mut Vec<&'a Value>, mode: Escape, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Var { path, escape } => {
                let Some(value) = lookup(stack, path) else {
                    continue;
                };
                let text = text_of(value);
                if *escape && mode == Escape::Html {
                    escape_into(out, &text);
                } else {
                    out.push_str(&text);
                }
            }
            Node::Section {
                path,
                inverted: true,
                children,
            } => {
                if !truthy(lookup(stack, path)) {
                    render_nodes(children, stack, mode, out);
                }
            }
            Node::Section { path, children, .. } => {
                let value = lookup(stack, path);
                if !truthy(value) {
                    continue;
                }
                let Some(value) = value else { continue };
                let items: Vec<&Value> = match value {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                for item in items {
                    stack.push(item);
                    render_nodes(children, stack, mode, out);
                    stack.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, data: Value) -> String {
        compile(template).unwrap().render(&data, Escape::Html)
    }

    #[test]
    fn interpolation_escapes_unless_triple_or_ampersand() {
        let data = json!({"x": "<a href=\"/\">&'</a>"});
        assert_eq!(
            render("{{x}}", data.clone()),
            "&lt;a href=&quot;/&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(render("{{{x}}}", data.clone()), "<a href=\"/\">&'</a>");
        assert_eq!(render("{{& x }}", data.clone()), "<a href=\"/\">&'</a>");
        let raw = compile("{{x}}").unwrap().render(&data, Escape::None);
        assert_eq!(raw, "<a href=\"/\">&'</a>");
    }

    #[test]
    fn json_values_render_as_mustache_java_writes_them() {
        let data = json!({"n": 32, "f": 0.1, "t": true, "no": false, "null": null, "o": {"a": 1}});
        assert_eq!(
            render(
                "{{n}} {{f}} {{t}} {{no}} [{{null}}] [{{missing}}] {{{o}}}",
                data
            ),
            "32 0.1 true false [] [] {\"a\":1}"
        );
    }

    #[test]
    fn dotted_names_resolve_and_broken_chains_are_empty() {
        let data = json!({"a": {"b": {"c": "deep"}}, "c": "top"});
        assert_eq!(render("{{a.b.c}}", data.clone()), "deep");
        assert_eq!(render("[{{a.x.c}}]", data.clone()), "[]");
        // Inside a section, names are looked up outwards; a dotted chain is not.
        assert_eq!(render("{{#a}}{{c}}|{{b.c}}{{/a}}", data), "top|deep");
    }

    #[test]
    fn sections_iterate_lists_and_enter_objects_and_skip_falsy() {
        let data = json!({"list": [{"n": 1}, {"n": 2}], "obj": {"n": "o"}, "empty": [],
            "f": false, "s": "", "nums": [1, 2, 3]});
        assert_eq!(render("{{#list}}{{n}},{{/list}}", data.clone()), "1,2,");
        assert_eq!(render("{{#obj}}{{n}}{{/obj}}", data.clone()), "o");
        assert_eq!(
            render(
                "{{#empty}}x{{/empty}}{{#f}}x{{/f}}{{#s}}x{{/s}}{{#nope}}x{{/nope}}",
                data.clone()
            ),
            ""
        );
        assert_eq!(
            render(
                "{{^empty}}e{{/empty}}{{^f}}f{{/f}}{{^list}}l{{/list}}",
                data.clone()
            ),
            "ef"
        );
        assert_eq!(render("{{#nums}}{{.}};{{/nums}}", data), "1;2;3;");
    }

    #[test]
    fn standalone_tags_take_their_whole_line() {
        let template = "{\n  {{#on}}\n  \"a\": 1,\n  {{/on}}\n  {{! a note }}\n  \"b\": 2\n}\n";
        assert_eq!(
            render(template, json!({"on": true})),
            "{\n  \"a\": 1,\n  \"b\": 2\n}\n"
        );
        assert_eq!(render(template, json!({"on": false})), "{\n  \"b\": 2\n}\n");
        // Not standalone: other text on the line stays.
        assert_eq!(render(" {{#on}}x{{/on}} \n", json!({"on": true})), " x \n");
        assert_eq!(
            render("a\r\n{{#on}}\r\nb\r\n{{/on}}\r\n", json!({"on": 1})),
            "a\r\nb\r\n"
        );
    }

    #[test]
    fn delimiters_can_be_changed() {
        assert_eq!(
            render("{{=<% %>=}}<% x %> {{x}} <%={{ }}=%>{{x}}", json!({"x": 1})),
            "1 {{x}} 1"
        );
    }

    #[test]
    fn malformed_templates_are_errors_not_panics() {
        assert_eq!(compile("{{x").unwrap_err(), TemplateError::UnclosedTag(0));
        assert_eq!(
            compile("{{#a}}").unwrap_err(),
            TemplateError::UnclosedSection("a".into())
        );
        assert!(matches!(
            compile("{{#a}}{{/b}}").unwrap_err(),
            TemplateError::Mismatch { .. }
        ));
        assert!(matches!(
            compile("{{/b}}").unwrap_err(),
            TemplateError::Mismatch { open: None, .. }
        ));
        assert_eq!(
            compile("{{> p}}").unwrap_err(),
            TemplateError::Partial("p".into())
        );
        assert!(matches!(
            compile("{{=x=}}").unwrap_err(),
            TemplateError::BadDelimiters(0)
        ));
        assert!(matches!(
            compile("{{}}").unwrap_err(),
            TemplateError::EmptyTag(0)
        ));
        assert!(matches!(
            compile("{{{x}}").unwrap_err(),
            TemplateError::UnclosedTag(0)
        ));
        let deep = format!("{}{}", "{{#a}}".repeat(100_000), "{{/a}}".repeat(100_000));
        assert!(matches!(
            compile(&deep).unwrap_err(),
            TemplateError::TooDeep(_)
        ));
        let fine = format!(
            "{}x{}",
            "{{#a}}".repeat(MAX_DEPTH),
            "{{/a}}".repeat(MAX_DEPTH)
        );
        assert!(compile(&fine).is_ok());
        // Multi-byte text around tags.
        assert_eq!(render("é{{x}}ü", json!({"x": "ß"})), "éßü");
    }
}
