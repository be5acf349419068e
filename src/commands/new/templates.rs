//! The files of a new project, from the templates in `templates/` (kept as
//! files so they read as the code they become; the Rust manifest is
//! `Cargo.toml.tmpl`, so cargo never takes the folder for a package).
//! `{{name}}` becomes the project's name; `{{sdk}}` the SDK's path.

use super::super::args::checkout::Checkout;
use super::super::build::Language;

/// A command handler or a reactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// World `handler`: answers commands.
    Handler,
    /// World `reactor`: listens to events, answers queries.
    Reactor,
}

impl Kind {
    /// For people.
    pub(super) fn label(self) -> &'static str {
        match self {
            Kind::Handler => "handler",
            Kind::Reactor => "reactor",
        }
    }
}

/// One file of a new project.
pub(super) struct File {
    /// Its path in the project.
    pub(super) path: &'static str,
    /// Its content.
    pub(super) text: String,
}

const RUST_CARGO: &str = include_str!("templates/rust/Cargo.toml.tmpl");
const RUST_HANDLER: &str = include_str!("templates/rust/handler.rs");
const RUST_REACTOR: &str = include_str!("templates/rust/reactor.rs");
const RUST_TEST_HANDLER: &str = include_str!("templates/rust/test_handler.rs");
const RUST_TEST_REACTOR: &str = include_str!("templates/rust/test_reactor.rs");
const PYTHON_HANDLER: &str = include_str!("templates/python/handler.py");
const PYTHON_REACTOR: &str = include_str!("templates/python/reactor.py");
const PYTHON_TEST_HANDLER: &str = include_str!("templates/python/test_handler.py");
const PYTHON_TEST_REACTOR: &str = include_str!("templates/python/test_reactor.py");
const JS_HANDLER: &str = include_str!("templates/js/handler.js");
const JS_REACTOR: &str = include_str!("templates/js/reactor.js");
const JS_TEST_HANDLER: &str = include_str!("templates/js/test_handler.mjs");
const JS_TEST_REACTOR: &str = include_str!("templates/js/test_reactor.mjs");
const GITIGNORE: &str = include_str!("templates/gitignore");
const README: &str = include_str!("templates/README.md");

/// Every file of a `language` project of `kind` named `name`.
pub(super) fn files(language: Language, kind: Kind, name: &str, checkout: &Checkout) -> Vec<File> {
    let reactor = kind == Kind::Reactor;
    let pick = |handler: &'static str, reactor_text: &'static str| {
        if reactor {
            reactor_text
        } else {
            handler
        }
    };
    let (source, test, test_command): (_, _, &str) = match language {
        Language::Rust => (
            ("src/lib.rs", pick(RUST_HANDLER, RUST_REACTOR)),
            (
                "tests/invoke.rs",
                pick(RUST_TEST_HANDLER, RUST_TEST_REACTOR),
            ),
            "cargo test                  # runs dist/{{name}}.wasm with pyou invoke",
        ),
        Language::Python => (
            ("app.py", pick(PYTHON_HANDLER, PYTHON_REACTOR)),
            (
                "test_app.py",
                pick(PYTHON_TEST_HANDLER, PYTHON_TEST_REACTOR),
            ),
            "python3 test_app.py         # runs dist/{{name}}.wasm with pyou invoke",
        ),
        Language::Js => (
            ("app.js", pick(JS_HANDLER, JS_REACTOR)),
            ("app.test.mjs", pick(JS_TEST_HANDLER, JS_TEST_REACTOR)),
            "node --test                 # runs dist/{{name}}.wasm with pyou invoke",
        ),
    };
    let try_it = if reactor {
        "pyou invoke --handlers dist --event counter.incremented '{\"name\":\"tea\",\"value\":1}'\n\
         pyou query --handlers dist {{name}} counts"
    } else {
        "pyou invoke --handlers dist {{name}}.hello '{\"name\":\"Ada\"}'"
    };
    let readme = README
        .replace("{{kind}}", kind.label())
        .replace("{{language}}", language.label())
        .replace("{{test}}", test_command)
        .replace("{{try}}", try_it);
    let mut out = vec![
        File {
            path: source.0,
            text: source.1.to_owned(),
        },
        File {
            path: test.0,
            text: test.1.to_owned(),
        },
        File {
            path: ".gitignore",
            text: GITIGNORE.to_owned(),
        },
        File {
            path: "README.md",
            text: readme,
        },
    ];
    if language == Language::Rust {
        out.push(File {
            path: "Cargo.toml",
            text: RUST_CARGO.replace("{{sdk}}", &toml_string(&checkout.sdk().to_string_lossy())),
        });
    }
    for file in &mut out {
        file.text = file.text.replace("{{name}}", name);
    }
    out
}

/// `text` escaped for the inside of a TOML basic string.
fn toml_string(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
