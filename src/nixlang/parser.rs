//! Nix's grammar (Nix's own `parser.y`) by recursive descent, into a plain tree for the
//! compiler ([`super::compile`]): offsets instead of a syntax tree with trivia, so that a first
//! evaluation spends little on parsing (ARCHITECTURE.md, "The Nix language").
//!
//! Strings keep their text as written (escapes are decoded by the compiler, with
//! [`super::strings`]). Every error is the first one, at its byte offset.

use std::cell::Cell;

use super::compile::BinOp;
use super::lexer::{StringEvent, Tok, Token, is_path_char, scan_string, token_at};

/// A syntax error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
    /// For an unexpected token: what would have been taken there.
    pub wanted: Option<String>,
}

/// An expression and where it starts (its first token).
pub struct Node<'s> {
    pub at: u32,
    pub kind: Kind<'s>,
}

pub enum Kind<'s> {
    Int(&'s str),
    Float(&'s str),
    Uri(&'s str),
    Ident(&'s str),
    /// `"…"` or `''…''`: the text between interpolations as written.
    Str {
        indented: bool,
        parts: Vec<Part<'s>>,
    },
    /// A path (`./a`, `/a`, `a/b`, `~/a`), the first part its literal start.
    Path(Vec<Part<'s>>),
    SearchPath(&'s str),
    CurPos,
    Paren(Box<Node<'s>>),
    List(Vec<Node<'s>>),
    Attrs {
        rec: bool,
        entries: Vec<Entry<'s>>,
    },
    /// `let { …; body = …; }`
    LegacyLet(Vec<Entry<'s>>),
    Let(Vec<Entry<'s>>, Box<Node<'s>>),
    Lambda(Box<Lambda<'s>>),
    Apply(Box<Node<'s>>, Box<Node<'s>>),
    /// `e.path`, `e.path or default`; the offset is the path's.
    Select(Box<Node<'s>>, AttrPath<'s>, Option<Box<Node<'s>>>),
    HasAttr(Box<Node<'s>>, AttrPath<'s>),
    /// The offset is the condition's.
    If(Box<Node<'s>>, Box<Node<'s>>, Box<Node<'s>>),
    Assert(Box<Node<'s>>, Box<Node<'s>>),
    With(Box<Node<'s>>, Box<Node<'s>>),
    Bin(BinOp, Box<Node<'s>>, Box<Node<'s>>),
    /// `x |> f` is `Pipe(f, x)`, as is `f <| x`.
    Pipe(Box<Node<'s>>, Box<Node<'s>>),
    Not(Box<Node<'s>>),
    Neg(Box<Node<'s>>),
}

pub enum Part<'s> {
    Text(&'s str),
    Interp(Node<'s>),
}

pub struct AttrPath<'s> {
    pub at: u32,
    pub attrs: Vec<Attr<'s>>,
}

pub enum Attr<'s> {
    /// A name (`or` included).
    Name(&'s str, u32),
    /// `"…"` (a [`Kind::Str`]).
    Str(Node<'s>),
    /// `${…}`, at the `${`.
    Dynamic(Node<'s>, u32),
}

impl Attr<'_> {
    pub fn at(&self) -> u32 {
        match self {
            Attr::Name(_, at) | Attr::Dynamic(_, at) => *at,
            Attr::Str(n) => n.at,
        }
    }
}

pub enum Entry<'s> {
    Inherit {
        from: Option<Node<'s>>,
        attrs: Vec<Attr<'s>>,
    },
    /// `path = value;`, at the path.
    Value { path: AttrPath<'s>, value: Node<'s> },
}

pub struct Lambda<'s> {
    pub at: u32,
    pub param: Param<'s>,
    pub body: Node<'s>,
}

pub enum Param<'s> {
    Ident(&'s str),
    Pattern {
        /// Name, where it is, default.
        formals: Vec<(&'s str, u32, Option<Node<'s>>)>,
        ellipsis: bool,
        /// `args@{ … }` or `{ … }@args`.
        bind: Option<(&'s str, u32)>,
    },
}

/// Parses `text` as one expression.
pub fn parse(text: &str) -> Result<Node<'_>, SyntaxError> {
    let mut p = Parser {
        text,
        b: text.as_bytes(),
        pos: 0,
        peeked: Cell::new(None),
        depth: 0,
        brackets: 0,
    };
    let e = p.expr()?;
    let t = p.peek();
    match t.tok {
        Tok::Eof => Ok(e),
        _ => Err(p.unexpected(t, "the end of the expression")),
    }
}

type Parsed<'s> = Result<Node<'s>, SyntaxError>;

struct Parser<'s> {
    text: &'s str,
    b: &'s [u8],
    /// Where the next token is looked for.
    pos: usize,
    /// The token last looked at, and the offset it was looked for at.
    peeked: Cell<Option<(usize, Token)>>,
    /// How deep the tree being built is at this point.
    depth: usize,
    /// How many brackets, strings and interpolations are open at this point.
    brackets: usize,
}

/// How many brackets, strings and interpolations may be open at once: more is a syntax
/// error, however short the text (a limit of ncsh's, below Nix's).
const MAX_BRACKETS: usize = 500;

/// How deep a tree may be: deeper is an error, as in Nix (whose parser's stack holds 10000
/// entries), so that neither compiling nor dropping a tree recurses without a bound.
const MAX_DEPTH: usize = 5000;

/// Binding powers: an operator's left power, and the least power its right operand takes.
/// Levels as in Nix's precedence table, from `->` (loosest) to `?`.
fn infix(tok: Tok) -> Option<(u8, u8, Option<BinOp>)> {
    use BinOp as B;
    let (level, right, op) = match tok {
        Tok::Implication => (1, true, B::Implication),
        Tok::OrOr => (2, false, B::Or),
        Tok::And => (3, false, B::And),
        Tok::Eq => (4, false, B::Eq),
        Tok::NotEq => (4, false, B::NotEq),
        Tok::Less => (5, false, B::Less),
        Tok::LessEq => (5, false, B::LessEq),
        Tok::More => (5, false, B::More),
        Tok::MoreEq => (5, false, B::MoreEq),
        Tok::Update => (6, true, B::Update),
        Tok::Plus => (8, false, B::Add),
        Tok::Minus => (8, false, B::Sub),
        Tok::Star => (9, false, B::Mul),
        Tok::Slash => (9, false, B::Div),
        Tok::Concat => (10, true, B::Concat),
        Tok::Question => return Some((22, 23, None)),
        _ => return None,
    };
    Some((level * 2, level * 2 + u8::from(!right), Some(op)))
}

/// The power `!`'s operand takes: the operators above `!` (level 7) bind inside it.
const NOT_OPERAND: u8 = 16;
/// The power `-`'s operand takes: no operator binds inside it.
const NEGATE_OPERAND: u8 = 24;

/// Operators that do not chain (`a == b == c` is an error; `?` chains in Nix 2.8).
fn non_associative(tok: Tok) -> bool {
    matches!(
        tok,
        Tok::Eq | Tok::NotEq | Tok::Less | Tok::LessEq | Tok::More | Tok::MoreEq
    )
}

fn describe(t: Token, text: &str) -> String {
    match t.tok {
        Tok::Eof => "the end of the input".to_string(),
        Tok::Ident => format!("the name '{}'", &text[t.start..t.end]),
        Tok::Quote | Tok::IndentOpen => "a string".to_string(),
        Tok::Int | Tok::Float => format!("the number {}", &text[t.start..t.end]),
        Tok::Path | Tok::HomePath | Tok::SearchPath => {
            format!("the path {}", &text[t.start..t.end])
        }
        Tok::UnterminatedComment => "a comment without its closing */".to_string(),
        _ => format!("'{}'", &text[t.start..t.end]),
    }
}

impl<'s> Parser<'s> {
    fn peek(&self) -> Token {
        if let Some((at, t)) = self.peeked.get()
            && at == self.pos
        {
            return t;
        }
        let t = token_at(self.b, self.pos);
        self.peeked.set(Some((self.pos, t)));
        t
    }

    fn peek_after(&self, t: Token) -> Token {
        token_at(self.b, t.end)
    }

    fn bump(&mut self, t: Token) -> Token {
        self.pos = t.end;
        t
    }

    fn err(&self, offset: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            offset,
            message: message.into(),
            wanted: None,
        }
    }

    fn unexpected(&self, t: Token, wanted: &str) -> SyntaxError {
        let mut e = match t.tok {
            Tok::Eof => self.err(
                t.start,
                format!("unexpected end of input, expected {wanted}"),
            ),
            _ => self.err(
                t.start,
                format!("unexpected {}, expected {wanted}", describe(t, self.text)),
            ),
        };
        e.wanted = Some(wanted.to_string());
        e
    }

    fn expect(&mut self, tok: Tok, wanted: &str) -> Result<Token, SyntaxError> {
        let t = self.peek();
        if t.tok == tok {
            Ok(self.bump(t))
        } else {
            Err(self.unexpected(t, wanted))
        }
    }

    fn node(at: usize, kind: Kind<'s>) -> Node<'s> {
        Node {
            at: at as u32,
            kind,
        }
    }

    /// `expr_function`: functions, `assert`, `with`, `let … in`, then `if` and the operators.
    fn expr(&mut self) -> Parsed<'s> {
        self.deeper(0)?;
        let e = stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.expr_function());
        self.depth -= 1;
        e
    }

    /// One level deeper (and `more` for a chain folded to the left), or the error.
    fn deeper(&mut self, more: usize) -> Result<(), SyntaxError> {
        if self.depth + more >= MAX_DEPTH {
            return Err(self.err(self.pos, "expression nested too deeply"));
        }
        if more == 0 {
            self.depth += 1;
        }
        Ok(())
    }

    fn expr_function(&mut self) -> Parsed<'s> {
        let t = self.peek();
        match t.tok {
            Tok::Ident => {
                let next = self.peek_after(t);
                match next.tok {
                    Tok::Colon => {
                        self.bump(next);
                        let body = self.expr()?;
                        let name = &self.text[t.start..t.end];
                        Ok(self.lambda(t.start, Param::Ident(name), body))
                    }
                    Tok::At => {
                        self.bump(next);
                        self.expect(Tok::LBrace, "'{' (a function's argument set)")?;
                        let bind = Some((&self.text[t.start..t.end], t.start as u32));
                        self.pattern(t.start, bind)
                    }
                    _ => self.expr_if(),
                }
            }
            Tok::LBrace if self.is_pattern(t) => {
                self.bump(t);
                self.pattern(t.start, None)
            }
            Tok::Assert => {
                self.bump(t);
                let cond = self.expr()?;
                self.expect(Tok::Semicolon, "';' after the assertion")?;
                let body = self.expr()?;
                Ok(Self::node(
                    t.start,
                    Kind::Assert(Box::new(cond), Box::new(body)),
                ))
            }
            Tok::With => {
                self.bump(t);
                let ns = self.expr()?;
                self.expect(Tok::Semicolon, "';' after the 'with' expression")?;
                let body = self.expr()?;
                Ok(Self::node(
                    t.start,
                    Kind::With(Box::new(ns), Box::new(body)),
                ))
            }
            Tok::Let if self.peek_after(t).tok != Tok::LBrace => {
                self.bump(t);
                let entries = self.bindings(Tok::In)?;
                self.expect(Tok::In, "'in' or a binding")?;
                let body = self.expr()?;
                Ok(Self::node(t.start, Kind::Let(entries, Box::new(body))))
            }
            _ => self.expr_if(),
        }
    }

    fn lambda(&self, at: usize, param: Param<'s>, body: Node<'s>) -> Node<'s> {
        Self::node(
            at,
            Kind::Lambda(Box::new(Lambda {
                at: at as u32,
                param,
                body,
            })),
        )
    }

    /// Whether the `{` at `t` starts a function's argument set rather than an attribute set.
    fn is_pattern(&self, t: Token) -> bool {
        let first = self.peek_after(t);
        match first.tok {
            Tok::Ellipsis => true,
            Tok::RBrace => matches!(self.peek_after(first).tok, Tok::Colon | Tok::At),
            Tok::Ident => matches!(
                self.peek_after(first).tok,
                Tok::Comma | Tok::Question | Tok::RBrace
            ),
            _ => false,
        }
    }

    /// The formals after `{` (consumed), the `}`, an optional `@name`, `:` and the body.
    fn pattern(&mut self, at: usize, mut bind: Option<(&'s str, u32)>) -> Parsed<'s> {
        let mut formals = Vec::new();
        let mut ellipsis = false;
        loop {
            let t = self.peek();
            match t.tok {
                Tok::RBrace => {
                    self.bump(t);
                    break;
                }
                Tok::Ellipsis => {
                    self.bump(t);
                    ellipsis = true;
                    self.expect(Tok::RBrace, "'}' after '...'")?;
                    break;
                }
                Tok::Ident => {
                    self.bump(t);
                    let default = if self.peek().tok == Tok::Question {
                        self.pos = self.peek().end;
                        Some(self.expr()?)
                    } else {
                        None
                    };
                    formals.push((&self.text[t.start..t.end], t.start as u32, default));
                    let sep = self.peek();
                    match sep.tok {
                        Tok::Comma => {
                            self.bump(sep);
                        }
                        Tok::RBrace => {}
                        _ => return Err(self.unexpected(sep, "',' or '}' in the argument set")),
                    }
                }
                _ => {
                    return Err(self.unexpected(t, "an argument name, '...' or '}'"));
                }
            }
        }
        let t = self.peek();
        if t.tok == Tok::At {
            if bind.is_some() {
                return Err(self.err(t.start, "a function's argument set has two '@' names"));
            }
            self.bump(t);
            let name = self.expect(Tok::Ident, "a name after '@'")?;
            bind = Some((&self.text[name.start..name.end], name.start as u32));
        }
        self.expect(Tok::Colon, "':' after the function's argument set")?;
        let body = self.expr()?;
        Ok(self.lambda(
            at,
            Param::Pattern {
                formals,
                ellipsis,
                bind,
            },
            body,
        ))
    }

    /// `expr_if`: `if`, or operators (with `|>` / `<|` at the loosest level).
    fn expr_if(&mut self) -> Parsed<'s> {
        let t = self.peek();
        if t.tok == Tok::If {
            self.bump(t);
            let cond = self.expr()?;
            self.expect(Tok::Then, "'then'")?;
            let yes = self.expr()?;
            self.expect(Tok::Else, "'else'")?;
            let no = self.expr()?;
            let at = cond.at as usize;
            return Ok(Self::node(
                at,
                Kind::If(Box::new(cond), Box::new(yes), Box::new(no)),
            ));
        }
        let first = self.op(0)?;
        let t = self.peek();
        match t.tok {
            Tok::PipeRight => {
                let (mut acc, mut folded) = (first, 0);
                while self.peek().tok == Tok::PipeRight {
                    folded += 1;
                    self.deeper(folded)?;
                    self.pos = self.peek().end;
                    let f = self.op(0)?;
                    let at = acc.at as usize;
                    acc = Self::node(at, Kind::Pipe(Box::new(f), Box::new(acc)));
                }
                if self.peek().tok == Tok::PipeLeft {
                    return Err(
                        self.err(self.peek().start, "'|>' and '<|' mixed without parentheses")
                    );
                }
                Ok(acc)
            }
            Tok::PipeLeft => {
                // Right-associative: `f <| g <| x` is `f (g x)`.
                let (mut functions, mut x) = (Vec::new(), first);
                while self.peek().tok == Tok::PipeLeft {
                    self.pos = self.peek().end;
                    let next = self.op(0)?;
                    functions.push(std::mem::replace(&mut x, next));
                }
                if self.peek().tok == Tok::PipeRight {
                    return Err(
                        self.err(self.peek().start, "'|>' and '<|' mixed without parentheses")
                    );
                }
                for f in functions.into_iter().rev() {
                    let at = f.at as usize;
                    x = Self::node(at, Kind::Pipe(Box::new(f), Box::new(x)));
                }
                Ok(x)
            }
            _ => Ok(first),
        }
    }

    /// Operators by precedence climbing: those with a left power of at least `min`.
    fn op(&mut self, min: u8) -> Parsed<'s> {
        self.deeper(0)?;
        let e = stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.op_inner(min));
        self.depth -= 1;
        e
    }

    fn op_inner(&mut self, min: u8) -> Parsed<'s> {
        let t = self.peek();
        let mut lhs = match t.tok {
            Tok::Bang => {
                self.bump(t);
                let x = self.op(NOT_OPERAND)?;
                Self::node(t.start, Kind::Not(Box::new(x)))
            }
            Tok::Minus => {
                self.bump(t);
                let x = self.op(NEGATE_OPERAND)?;
                Self::node(t.start, Kind::Neg(Box::new(x)))
            }
            _ => self.app()?,
        };
        let mut last: Option<Tok> = None;
        let mut folded = 0;
        loop {
            let t = self.peek();
            let Some((left, right, op)) = infix(t.tok) else {
                break;
            };
            if left < min {
                break;
            }
            if let Some(prev) = last
                && non_associative(prev)
                && infix(prev).map(|p| p.0) == Some(left)
            {
                return Err(self.err(
                    t.start,
                    format!(
                        "unexpected {}: comparisons do not chain; add parentheses",
                        describe(t, self.text)
                    ),
                ));
            }
            self.bump(t);
            folded += 1;
            self.deeper(folded)?;
            let at = lhs.at as usize;
            lhs = match op {
                None => {
                    let path = self.attrpath()?;
                    Self::node(at, Kind::HasAttr(Box::new(lhs), path))
                }
                Some(op) => {
                    let rhs = self.op(right)?;
                    Self::node(at, Kind::Bin(op, Box::new(lhs), Box::new(rhs)))
                }
            };
            last = Some(t.tok);
        }
        Ok(lhs)
    }

    /// `expr_app`: a function applied to arguments.
    fn app(&mut self) -> Parsed<'s> {
        let mut f = self.select()?;
        let mut folded = 0;
        while starts_simple(self.peek(), self.b) {
            folded += 1;
            self.deeper(folded)?;
            let x = self.select()?;
            let at = f.at as usize;
            f = Self::node(at, Kind::Apply(Box::new(f), Box::new(x)));
        }
        Ok(f)
    }

    /// `expr_select`: `e.path`, `e.path or default`, and Nix's old `e or` (`e` applied to a
    /// variable named `or`).
    fn select(&mut self) -> Parsed<'s> {
        // Lists nest and `a.b or c.d or …` chains through here, without `expr` between.
        self.deeper(0)?;
        let e = stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.select_inner());
        self.depth -= 1;
        e
    }

    fn select_inner(&mut self) -> Parsed<'s> {
        let e = self.simple()?;
        let t = self.peek();
        match t.tok {
            Tok::Dot => {
                self.bump(t);
                let path = self.attrpath()?;
                let default = if self.peek().tok == Tok::Or {
                    self.pos = self.peek().end;
                    Some(Box::new(self.select()?))
                } else {
                    None
                };
                let at = e.at as usize;
                Ok(Self::node(at, Kind::Select(Box::new(e), path, default)))
            }
            Tok::Or => {
                self.bump(t);
                let at = e.at as usize;
                let or = Self::node(t.start, Kind::Ident("or"));
                Ok(Self::node(at, Kind::Apply(Box::new(e), Box::new(or))))
            }
            _ => Ok(e),
        }
    }

    fn simple(&mut self) -> Parsed<'s> {
        let t = self.peek();
        let opens = matches!(
            t.tok,
            Tok::Quote
                | Tok::IndentOpen
                | Tok::LParen
                | Tok::LBrack
                | Tok::LBrace
                | Tok::Rec
                | Tok::Let
        );
        if !opens {
            return self.simple_inner(t);
        }
        self.open(t.start)?;
        let e = self.simple_inner(t);
        self.brackets -= 1;
        e
    }

    /// One bracket, string or interpolation deeper (opened at `at`), or the error.
    fn open(&mut self, at: usize) -> Result<(), SyntaxError> {
        if self.brackets >= MAX_BRACKETS {
            return Err(self.err(at, "expression nested too deeply"));
        }
        self.brackets += 1;
        Ok(())
    }

    fn simple_inner(&mut self, t: Token) -> Parsed<'s> {
        let text = &self.text[t.start..t.end];
        let kind = match t.tok {
            Tok::Ident => Kind::Ident(text),
            Tok::Int => Kind::Int(text),
            Tok::Float => Kind::Float(text),
            Tok::Uri => Kind::Uri(text),
            Tok::SearchPath => Kind::SearchPath(text),
            Tok::CurPos => Kind::CurPos,
            Tok::Quote => {
                self.bump(t);
                return self.string(t.start, false);
            }
            Tok::IndentOpen => {
                self.bump(t);
                return self.string(t.start, true);
            }
            Tok::Path | Tok::HomePath => {
                self.bump(t);
                return self.path(t);
            }
            Tok::LParen => {
                self.bump(t);
                let e = self.expr()?;
                self.expect(Tok::RParen, "')'")?;
                return Ok(Self::node(t.start, Kind::Paren(Box::new(e))));
            }
            Tok::LBrack => {
                self.bump(t);
                let mut items = Vec::new();
                while self.peek().tok != Tok::RBrack {
                    if !starts_simple(self.peek(), self.b) {
                        let mut e = self.unexpected(self.peek(), "a list element or ']'");
                        if self.peek().tok == Tok::Minus {
                            e.message
                                .push_str(" (a negative number in a list is written (-1))");
                        }
                        return Err(e);
                    }
                    items.push(self.select()?);
                }
                self.pos = self.peek().end;
                return Ok(Self::node(t.start, Kind::List(items)));
            }
            Tok::LBrace => {
                self.bump(t);
                let entries = self.bindings(Tok::RBrace)?;
                self.expect(Tok::RBrace, "'}' or a binding")?;
                return Ok(Self::node(
                    t.start,
                    Kind::Attrs {
                        rec: false,
                        entries,
                    },
                ));
            }
            Tok::Rec => {
                self.bump(t);
                self.expect(Tok::LBrace, "'{' after 'rec'")?;
                let entries = self.bindings(Tok::RBrace)?;
                self.expect(Tok::RBrace, "'}' or a binding")?;
                return Ok(Self::node(t.start, Kind::Attrs { rec: true, entries }));
            }
            Tok::Let => {
                self.bump(t);
                self.expect(Tok::LBrace, "'{' after 'let'")?;
                let entries = self.bindings(Tok::RBrace)?;
                self.expect(Tok::RBrace, "'}' or a binding")?;
                return Ok(Self::node(t.start, Kind::LegacyLet(entries)));
            }
            Tok::UnterminatedComment => {
                return Err(self.err(t.start, "a comment '/*' without its closing '*/'"));
            }
            Tok::Unknown => {
                return Err(self.err(t.start, format!("unexpected character '{text}'")));
            }
            _ => return Err(self.unexpected(t, "an expression")),
        };
        self.bump(t);
        Ok(Self::node(t.start, kind))
    }

    /// Bindings up to `end` (not consumed): `path = value;` and `inherit …;`.
    fn bindings(&mut self, end: Tok) -> Result<Vec<Entry<'s>>, SyntaxError> {
        let mut entries = Vec::new();
        loop {
            let t = self.peek();
            if t.tok == end {
                return Ok(entries);
            }
            if t.tok == Tok::Inherit {
                self.bump(t);
                let from = if self.peek().tok == Tok::LParen {
                    self.pos = self.peek().end;
                    let e = self.expr()?;
                    self.expect(Tok::RParen, "')'")?;
                    Some(e)
                } else {
                    None
                };
                let mut attrs = Vec::new();
                while self.peek().tok != Tok::Semicolon {
                    attrs.push(self.attr("a name to inherit or ';'")?);
                }
                self.pos = self.peek().end;
                entries.push(Entry::Inherit { from, attrs });
                continue;
            }
            if !matches!(t.tok, Tok::Ident | Tok::Or | Tok::Quote | Tok::DollarCurly) {
                let wanted = if end == Tok::In {
                    "a binding or 'in'"
                } else {
                    "a binding or '}'"
                };
                return Err(self.unexpected(t, wanted));
            }
            let path = self.attrpath()?;
            self.expect(Tok::Assign, "'=' or '.'")?;
            let value = self.expr()?;
            self.expect(Tok::Semicolon, "';' after the value")?;
            entries.push(Entry::Value { path, value });
        }
    }

    fn attrpath(&mut self) -> Result<AttrPath<'s>, SyntaxError> {
        let at = self.peek().start as u32;
        let mut attrs = vec![self.attr("an attribute name")?];
        while self.peek().tok == Tok::Dot {
            self.pos = self.peek().end;
            attrs.push(self.attr("an attribute name after '.'")?);
        }
        Ok(AttrPath { at, attrs })
    }

    fn attr(&mut self, wanted: &str) -> Result<Attr<'s>, SyntaxError> {
        let t = self.peek();
        match t.tok {
            Tok::Ident | Tok::Or => {
                self.bump(t);
                Ok(Attr::Name(&self.text[t.start..t.end], t.start as u32))
            }
            Tok::Quote => {
                self.bump(t);
                Ok(Attr::Str(self.string(t.start, false)?))
            }
            Tok::DollarCurly => {
                self.bump(t);
                Ok(Attr::Dynamic(self.interpolation()?, t.start as u32))
            }
            _ => Err(self.unexpected(t, wanted)),
        }
    }

    /// An interpolation's expression and its `}`, after the `${` (consumed).
    fn interpolation(&mut self) -> Parsed<'s> {
        self.open(self.pos)?;
        let e = self.expr();
        self.brackets -= 1;
        let e = e?;
        self.expect(Tok::RBrace, "'}' to close '${'")?;
        Ok(e)
    }

    /// The rest of a string after its opening `"` or `''` (at `start`).
    fn string(&mut self, start: usize, indented: bool) -> Parsed<'s> {
        let mut parts = Vec::new();
        loop {
            let from = self.pos;
            match scan_string(self.b, from, indented) {
                StringEvent::Interpolation { text_end } => {
                    if text_end > from {
                        parts.push(Part::Text(&self.text[from..text_end]));
                    }
                    self.pos = text_end + 2;
                    parts.push(Part::Interp(self.interpolation()?));
                }
                StringEvent::End { text_end, after } => {
                    if text_end > from {
                        parts.push(Part::Text(&self.text[from..text_end]));
                    }
                    self.pos = after;
                    return Ok(Self::node(start, Kind::Str { indented, parts }));
                }
                StringEvent::Unterminated => {
                    return Err(
                        self.err(start, "unterminated string: its closing quote is missing")
                    );
                }
            }
        }
    }

    /// The rest of a path after its first token `first` (consumed): interpolations and the
    /// path characters between them.
    fn path(&mut self, first: Token) -> Parsed<'s> {
        let b = self.b;
        let mut parts = vec![Part::Text(&self.text[first.start..first.end])];
        let mut last = b[first.end - 1];
        while b.get(self.pos..self.pos + 2) == Some(b"${") {
            self.pos += 2;
            parts.push(Part::Interp(self.interpolation()?));
            let from = self.pos;
            while b
                .get(self.pos)
                .is_some_and(|&c| is_path_char(c) || c == b'/')
            {
                self.pos += 1;
            }
            if self.pos > from {
                parts.push(Part::Text(&self.text[from..self.pos]));
                last = b[self.pos - 1];
            } else {
                last = b'}';
            }
        }
        if last == b'/' {
            return Err(self.err(
                first.start,
                format!(
                    "path '{}' has a trailing slash",
                    &self.text[first.start..self.pos]
                ),
            ));
        }
        Ok(Self::node(first.start, Kind::Path(parts)))
    }
}

/// Whether `t` starts an `expr_simple` (a function's argument, a list element).
fn starts_simple(t: Token, b: &[u8]) -> bool {
    match t.tok {
        Tok::Ident
        | Tok::Int
        | Tok::Float
        | Tok::Uri
        | Tok::Path
        | Tok::HomePath
        | Tok::SearchPath
        | Tok::CurPos
        | Tok::Quote
        | Tok::IndentOpen
        | Tok::LParen
        | Tok::LBrack
        | Tok::LBrace
        | Tok::Rec => true,
        Tok::Let => token_at(b, t.end).tok == Tok::LBrace,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> (usize, String) {
        match parse(text) {
            Ok(_) => panic!("{text:?} parsed"),
            Err(e) => (e.offset, e.message),
        }
    }

    #[test]
    fn errors_say_what_was_found_and_what_was_expected_where() {
        assert_eq!(
            error("{ a = 1 }"),
            (8, "unexpected '}', expected ';' after the value".into())
        );
        assert_eq!(
            error("[ 1 2"),
            (
                5,
                "unexpected end of input, expected a list element or ']'".into()
            )
        );
        assert_eq!(
            error("1 == 2 == 3"),
            (
                7,
                "unexpected '==': comparisons do not chain; add parentheses".into()
            )
        );
        assert_eq!(
            error("x: \"abc"),
            (
                3,
                "unterminated string: its closing quote is missing".into()
            )
        );
        assert_eq!(
            error("./a/"),
            (0, "path './a/' has a trailing slash".into())
        );
        assert_eq!(
            error("{ a, b }@x@y: a"),
            (
                10,
                "unexpected '@', expected ':' after the function's argument set".into()
            )
        );
        assert_eq!(error("1 ; 2").0, 2);
    }

    #[test]
    fn brackets_nest_500_deep_and_no_deeper() {
        for (open, close) in [("[ ", " ]"), ("(", ")"), ("{ a = ", "; }"), ("\"${", "}\"")] {
            // A string and its interpolation are two levels.
            let n = if open.starts_with('"') { 250 } else { 500 };
            let text = |n: usize| format!("{}1{}", open.repeat(n), close.repeat(n));
            assert!(parse(&text(n)).is_ok(), "{open}");
            let e = parse(&text(n + 1)).err().map(|e| e.message);
            assert_eq!(e.as_deref(), Some("expression nested too deeply"), "{open}");
        }
    }

    #[test]
    fn long_chains_and_deep_nesting_are_an_error_not_a_crash() {
        let chains = [
            ("[ 1 ] ++ ", "[ 1 ]"),
            ("x: ", "1"),
            ("!", "true"),
            ("-", "1"),
            ("1 + ", "1"),
            ("f ", "1"),
            ("1 |> ", "f"),
            ("let a = 1; in ", "a"),
            ("x.a or ", "1"),
        ];
        for (unit, end) in chains {
            let text = format!("{}{end}", unit.repeat(1000));
            assert!(parse(&text).is_ok(), "{unit}");
            let text = format!("{}{end}", unit.repeat(20_000));
            let e = parse(&text).err().map(|e| e.message);
            assert_eq!(e.as_deref(), Some("expression nested too deeply"), "{unit}");
        }
    }
}
