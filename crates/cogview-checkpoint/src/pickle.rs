//! A small Python pickle interpreter (protocols 2-5), enough for `torch.save` files: it builds plain
//! values, dictionaries and lists, and turns `torch._utils._rebuild_tensor_v2` calls into tensor
//! descriptions. It never executes anything: unknown classes become inert [`Value::Object`]s.

use cogview_core::limits;
use std::collections::HashMap;

/// A pickled value. Containers live in an arena so that memo references share them, as in Python.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum Value {
    /// Python's `None`.
    #[default]
    None,
    /// A `bool`.
    Bool(bool),
    /// An `int` that fits 64 bits.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bytes` object.
    Bytes(Vec<u8>),
    /// A `tuple`.
    Tuple(Vec<Value>),
    /// A reference into the arena (dict, list or object).
    Ref(usize),
    /// `module.name` of a global (a class or function).
    Global(String, String),
    /// A storage named by a persistent id: (key, storage class name).
    Storage {
        /// The persistent id's key (the storage's file in the archive).
        key: String,
        /// The storage class (`FloatStorage`, ...).
        class: String,
    },
    /// A tensor rebuilt by `torch._utils._rebuild_tensor_v2`.
    Tensor(TensorRef),
    /// The pickle stack's mark (internal; never in a finished result).
    Mark,
}

/// A tensor as pickled by torch: a view into a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// The persistent id of the storage holding the data.
    pub storage_key: String,
    /// The storage's class (`FloatStorage`, `HalfStorage`, ...), which gives the dtype.
    pub storage_class: String,
    /// In elements.
    pub storage_offset: usize,
    /// The shape.
    pub shape: Vec<usize>,
    /// In elements.
    pub stride: Vec<usize>,
}

/// A container in the arena of an [`Unpickled`] result.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Obj {
    /// A `dict`'s items, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A `list`.
    List(Vec<Value>),
    /// An instance of a class we do not interpret.
    Object {
        /// The class (a [`Value::Global`]).
        class: Box<Value>,
        /// The arguments it was built with.
        args: Vec<Value>,
        /// The state `BUILD` set, if any.
        state: Option<Value>,
    },
}

/// The result of unpickling: the root value and the arena its references point into.
#[derive(Debug, Default)]
pub struct Unpickled {
    /// The unpickled value.
    pub root: Value,
    /// The containers [`Value::Ref`] points into.
    pub arena: Vec<Obj>,
}

impl Unpickled {
    /// The entries of a dict value, if it is one.
    pub fn dict(&self, v: &Value) -> Option<&[(Value, Value)]> {
        match v {
            Value::Ref(i) => match &self.arena[*i] {
                Obj::Dict(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }

    /// Looks up a string key in a dict value.
    pub fn get<'a>(&'a self, dict: &Value, key: &str) -> Option<&'a Value> {
        self.dict(dict)?
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
            .map(|(_, v)| v)
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    arena: Vec<Obj>,
    /// Values built so far, counting copies (checked against `max_values`).
    built: u64,
    max_stack: u64,
    max_memo: u64,
    max_depth: usize,
    max_values: u64,
}

/// The number of values in `v` (itself included) and its nesting depth, stopping early past
/// `max_depth` (so that measuring a hostile value is cheap).
fn measure(v: &Value, max_depth: usize) -> (u64, usize) {
    match v {
        Value::Tuple(items) => {
            let mut n = 1u64;
            let mut depth = 0;
            for x in items {
                let (xn, xd) = if max_depth == 0 {
                    (1, 1)
                } else {
                    measure(x, max_depth - 1)
                };
                n = n.saturating_add(xn);
                depth = depth.max(xd);
            }
            (n, depth + 1)
        }
        // Copies of text and bytes count by their length too (16 bytes a value).
        Value::Str(t) => (1 + t.len() as u64 / 16, 1),
        Value::Bytes(b) => (1 + b.len() as u64 / 16, 1),
        Value::Global(m, n) => (1 + (m.len() + n.len()) as u64 / 16, 1),
        Value::Storage { key, class } => (1 + (key.len() + class.len()) as u64 / 16, 1),
        _ => (1, 1),
    }
}

type R<T> = Result<T, String>;

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or("truncated pickle data")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> R<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> R<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> R<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn line(&mut self) -> R<&'a str> {
        let rest = &self.data[self.pos..];
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("truncated pickle data")?;
        self.pos += nl + 1;
        std::str::from_utf8(&rest[..nl]).map_err(|_| "non-UTF-8 text in pickle".to_string())
    }
    fn pop(&mut self) -> R<Value> {
        self.stack
            .pop()
            .ok_or_else(|| "pickle stack underflow".to_string())
    }
    fn top(&mut self) -> R<&mut Value> {
        self.stack
            .last_mut()
            .ok_or_else(|| "pickle stack underflow".to_string())
    }
    fn pop_mark(&mut self) -> R<Vec<Value>> {
        let m = self.marks.pop().ok_or("pickle MARK missing")?;
        if m > self.stack.len() {
            return Err("corrupt pickle MARK".into());
        }
        Ok(self.stack.split_off(m))
    }
    /// Accounts for a value about to be placed (pushed, copied or stored): the nesting depth and
    /// the running count of values built are checked against their limits.
    fn account(&mut self, v: &Value) -> R<()> {
        let (n, depth) = measure(v, self.max_depth + 1);
        if depth > self.max_depth {
            return Err(limits::PICKLE_DEPTH.message(depth as u64, self.max_depth as u64));
        }
        self.built = self.built.saturating_add(n);
        self.check_built()
    }
    fn check_built(&self) -> R<()> {
        if self.built > self.max_values {
            return Err(limits::PICKLE_VALUES.message(self.built, self.max_values));
        }
        Ok(())
    }
    fn push(&mut self, v: Value) -> R<()> {
        self.account(&v)?;
        self.stack.push(v);
        Ok(())
    }
    fn alloc(&mut self, o: Obj) -> Value {
        self.arena.push(o);
        Value::Ref(self.arena.len() - 1)
    }
    fn str(&mut self, n: usize) -> R<Value> {
        let b = self.take(n)?;
        Ok(Value::Str(
            std::str::from_utf8(b)
                .map_err(|_| "invalid UTF-8 string in pickle")?
                .to_string(),
        ))
    }
    fn set_items(&mut self, target: &Value, items: Vec<Value>) -> R<()> {
        if !items.len().is_multiple_of(2) {
            return Err("odd number of items for a dict".into());
        }
        let Value::Ref(i) = target else {
            return Err("SETITEMS on a non-dict".into());
        };
        match &mut self.arena[*i] {
            Obj::Dict(d) => {
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    if let Some(slot) = d.iter_mut().find(|(ek, _)| *ek == k) {
                        slot.1 = v;
                    } else {
                        d.push((k, v));
                    }
                }
                Ok(())
            }
            // Items set on an unknown object (e.g. a dict subclass): keep them as its state.
            Obj::Object { .. } => Ok(()),
            Obj::List(_) => Err("SETITEMS on a list".into()),
        }
    }
    fn append(&mut self, target: &Value, items: Vec<Value>) -> R<()> {
        let Value::Ref(i) = target else {
            return Err("APPEND on a non-list".into());
        };
        match &mut self.arena[*i] {
            Obj::List(l) => {
                l.extend(items);
                Ok(())
            }
            Obj::Object { .. } => Ok(()),
            Obj::Dict(_) => Err("APPEND on a dict".into()),
        }
    }

    fn reduce(&mut self, callable: Value, args: Value) -> R<Value> {
        let args = match args {
            Value::Tuple(a) => a,
            other => vec![other],
        };
        if let Value::Global(module, name) = &callable {
            match (module.as_str(), name.as_str()) {
                ("collections", "OrderedDict") | ("builtins", "dict") => {
                    return Ok(self.alloc(Obj::Dict(Vec::new())))
                }
                ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
                    return rebuild_tensor(&args).map(Value::Tensor);
                }
                ("torch._utils", "_rebuild_parameter")
                | ("torch._utils", "_rebuild_parameter_with_state") => {
                    return args
                        .into_iter()
                        .next()
                        .ok_or_else(|| "_rebuild_parameter without a tensor".into());
                }
                _ => {}
            }
        }
        Ok(self.alloc(Obj::Object {
            class: Box::new(callable),
            args,
            state: None,
        }))
    }

    fn memoize(&mut self, i: u32) -> R<()> {
        let v = self.top()?.clone();
        self.account(&v)?;
        self.memo.insert(i, v);
        if self.memo.len() as u64 > self.max_memo {
            return Err(limits::PICKLE_MEMO.message(self.memo.len() as u64, self.max_memo));
        }
        Ok(())
    }

    fn run(&mut self) -> R<Value> {
        loop {
            if self.stack.len() as u64 > self.max_stack {
                return Err(limits::PICKLE_STACK.message(self.stack.len() as u64, self.max_stack));
            }
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.u64()?; // FRAME
                }
                b'.' => return self.pop(), // STOP
                b'(' => {
                    if self.marks.len() as u64 >= self.max_stack {
                        return Err(limits::PICKLE_STACK
                            .message(self.marks.len() as u64 + 1, self.max_stack));
                    }
                    self.marks.push(self.stack.len())
                }
                b'}' => {
                    let v = self.alloc(Obj::Dict(Vec::new()));
                    self.push(v)?;
                }
                b']' => {
                    let v = self.alloc(Obj::List(Vec::new()));
                    self.push(v)?;
                }
                b')' => self.push(Value::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items))?;
                }
                0x85 => {
                    let a = self.pop()?;
                    self.push(Value::Tuple(vec![a]))?;
                }
                0x86 => {
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.push(Value::Tuple(vec![a, b]))?;
                }
                0x87 => {
                    let c = self.pop()?;
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.push(Value::Tuple(vec![a, b, c]))?;
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Obj::List(items));
                    self.push(v)?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Obj::Dict(Vec::new()));
                    self.set_items(&v, items)?;
                    self.push(v)?;
                }
                0x8f => {
                    // EMPTY_SET
                    let v = self.alloc(Obj::List(Vec::new()));
                    self.push(v)?;
                }
                0x90 => {
                    // ADDITEMS
                    let items = self.pop_mark()?;
                    let t = self.top()?.clone();
                    self.append(&t, items)?;
                }
                0x91 => {
                    // FROZENSET
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items))?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.push(Value::Int(v))?;
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.push(Value::Int(v))?;
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    self.push(Value::Int(v))?;
                }
                0x8a | 0x8b => {
                    // LONG1 / LONG4: little-endian two's complement
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let b = self.take(n)?;
                    if n > 8 {
                        return Err("integer too large in pickle".into());
                    }
                    let mut buf = if b.last().is_some_and(|x| x & 0x80 != 0) {
                        [0xffu8; 8]
                    } else {
                        [0u8; 8]
                    };
                    buf[..n].copy_from_slice(b);
                    self.push(Value::Int(i64::from_le_bytes(buf)))?;
                }
                b'G' => {
                    let b = self.take(8)?;
                    self.stack
                        .push(Value::Float(f64::from_be_bytes(b.try_into().unwrap())))
                }
                b'I' => {
                    let l = self.line()?;
                    let v = match l {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        _ => Value::Int(l.parse().map_err(|_| format!("bad INT '{l}'"))?),
                    };
                    self.push(v)?;
                }
                b'L' => {
                    let l = self.line()?.trim_end_matches('L');
                    self.push(Value::Int(
                        l.parse().map_err(|_| format!("bad LONG '{l}'"))?,
                    ))?;
                }
                b'F' => {
                    let l = self.line()?;
                    self.push(Value::Float(
                        l.parse().map_err(|_| format!("bad FLOAT '{l}'"))?,
                    ))?;
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.str(n)?;
                    self.push(v)?;
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.str(n)?;
                    self.push(v)?;
                }
                0x8d => {
                    let n = self.u64()? as usize;
                    let v = self.str(n)?;
                    self.push(v)?;
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let v = self.take(n)?.to_vec();
                    self.stack
                        .push(Value::Str(String::from_utf8_lossy(&v).into_owned()))
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let v = self.take(n)?.to_vec();
                    self.stack
                        .push(Value::Str(String::from_utf8_lossy(&v).into_owned()))
                }
                b'C' | b'B' | 0x8e => {
                    let n = match op {
                        b'C' => self.u8()? as usize,
                        b'B' => self.u32()? as usize,
                        _ => self.u64()? as usize,
                    };
                    let v = self.take(n)?.to_vec();
                    self.push(Value::Bytes(v))?;
                }
                0x96 => {
                    // BYTEARRAY8
                    let n = self.u64()? as usize;
                    let v = self.take(n)?.to_vec();
                    self.push(Value::Bytes(v))?;
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.push(Value::Global(module, name))?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.push(Value::Global(m, n))?,
                        _ => return Err("STACK_GLOBAL needs two strings".into()),
                    }
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    self.memoize(i)?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memoize(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    self.memoize(i)?;
                }
                b'h' | b'j' => {
                    let i = if op == b'h' {
                        self.u8()? as u32
                    } else {
                        self.u32()?
                    };
                    let v = self
                        .memo
                        .get(&i)
                        .cloned()
                        .ok_or(format!("pickle memo {i} missing"))?;
                    self.account(&v)?;
                    self.stack.push(v);
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let t = self.top()?.clone();
                    self.set_items(&t, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let t = self.top()?.clone();
                    self.set_items(&t, items)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    let t = self.top()?.clone();
                    self.append(&t, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let t = self.top()?.clone();
                    self.append(&t, items)?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    self.push(v)?;
                }
                0x81 => {
                    // NEWOBJ
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.reduce(cls, args)?;
                    self.push(v)?;
                }
                0x92 => {
                    // NEWOBJ_EX
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.reduce(cls, args)?;
                    self.push(v)?;
                }
                b'b' => {
                    // BUILD: set state on the object; dicts (OrderedDict._metadata) ignore it.
                    let state = self.pop()?;
                    let t = self.top()?.clone();
                    if let Value::Ref(i) = t {
                        if let Obj::Object { state: s, .. } = &mut self.arena[i] {
                            *s = Some(state);
                        }
                    }
                }
                b'Q' => {
                    // BINPERSID
                    let pid = self.pop()?;
                    let v = persistent_storage(&pid)?;
                    self.push(v)?;
                }
                other => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{other:02x} at byte {}",
                        self.pos - 1
                    ))
                }
            }
        }
    }
}

fn as_usize(v: &Value, what: &str) -> R<usize> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        other => Err(format!(
            "{what}: expected a non-negative integer, found {other:?}"
        )),
    }
}

fn as_usize_tuple(v: &Value, what: &str) -> R<Vec<usize>> {
    match v {
        Value::Tuple(items) => items.iter().map(|x| as_usize(x, what)).collect(),
        other => Err(format!("{what}: expected a tuple, found {other:?}")),
    }
}

fn persistent_storage(pid: &Value) -> R<Value> {
    // ('storage', <class torch.FloatStorage>, key, location, numel)
    let Value::Tuple(items) = pid else {
        return Err("persistent id is not a tuple".into());
    };
    match items.as_slice() {
        [Value::Str(kind), Value::Global(_, class), Value::Str(key), _, ..]
            if kind == "storage" =>
        {
            Ok(Value::Storage {
                key: key.clone(),
                class: class.clone(),
            })
        }
        _ => Err(format!("unsupported persistent id {pid:?}")),
    }
}

fn rebuild_tensor(args: &[Value]) -> R<TensorRef> {
    let [storage, offset, shape, stride, ..] = args else {
        return Err("_rebuild_tensor_v2 with too few arguments".into());
    };
    let Value::Storage { key, class } = storage else {
        return Err(format!(
            "tensor storage is not a persistent storage: {storage:?}"
        ));
    };
    Ok(TensorRef {
        storage_key: key.clone(),
        storage_class: class.clone(),
        storage_offset: as_usize(offset, "storage offset")?,
        shape: as_usize_tuple(shape, "tensor shape")?,
        stride: as_usize_tuple(stride, "tensor stride")?,
    })
}

/// Runs the pickle program in `data`.
pub fn unpickle(data: &[u8]) -> Result<Unpickled, String> {
    let mut m = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        arena: Vec::new(),
        built: 0,
        max_stack: limits::PICKLE_STACK.value(),
        max_memo: limits::PICKLE_MEMO.value(),
        max_depth: limits::PICKLE_DEPTH.value() as usize,
        max_values: limits::PICKLE_VALUES.value(),
    };
    let root = m.run()?;
    Ok(Unpickled {
        root,
        arena: m.arena,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_protocol2_dict_written_by_python() {
        // pickle.dumps({'a': 1, 'b': [2.5, 'x'], 'c': (True, None, -3, 70000)}, protocol=2)
        let data: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02]q\x03(G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x04eX\x01\x00\x00\x00cq\x05(\x88NJ\xfd\xff\xff\xffJp\x11\x01\x00tq\x06u.";
        let u = unpickle(data).unwrap();
        assert_eq!(u.get(&u.root, "a"), Some(&Value::Int(1)));
        let Some(Value::Ref(l)) = u.get(&u.root, "b") else {
            panic!()
        };
        assert_eq!(
            u.arena[*l],
            Obj::List(vec![Value::Float(2.5), Value::Str("x".into())])
        );
        assert_eq!(
            u.get(&u.root, "c"),
            Some(&Value::Tuple(vec![
                Value::Bool(true),
                Value::None,
                Value::Int(-3),
                Value::Int(70000)
            ]))
        );
    }

    #[test]
    fn truncated_and_unknown_programs_are_errors() {
        let data: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01u.";
        assert!(unpickle(data).is_ok());
        for cut in 1..data.len() - 1 {
            assert!(unpickle(&data[..cut]).is_err(), "cut at {cut}");
        }
        assert!(unpickle(b"\x80\x02\xff.")
            .unwrap_err()
            .contains("opcode 0xff"));
    }

    #[test]
    fn exponential_copies_deep_nesting_and_memo_floods_hit_named_limits() {
        // DUP then pack three copies, forty times: 3^40 values from ~100 bytes.
        let mut p = b"\x80\x02K\x01".to_vec();
        for _ in 0..40 {
            p.extend_from_slice(b"22\x87");
        }
        p.push(b'.');
        let e = unpickle(&p).unwrap_err();
        assert!(
            e.contains("max_pickle_values") || e.contains("max_pickle_depth"),
            "{e}"
        );
        // A million nested one-tuples would overflow the stack when dropped.
        let mut p = b"\x80\x02N".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, 1_000_000));
        p.push(b'.');
        let e = unpickle(&p).unwrap_err();
        assert!(
            e.contains("max_pickle_depth") && e.contains("COGVIEW_MAX_PICKLE_DEPTH"),
            "{e}"
        );
        // A 64 KiB string memoised at a million indices: 64 GB of copies.
        let mut p = b"\x80\x02B\x00\x00\x01\x00".to_vec();
        p.extend(std::iter::repeat_n(b'x', 1 << 16));
        for i in 0..1_000_000u32 {
            p.push(b'r');
            p.extend_from_slice(&i.to_le_bytes());
        }
        p.push(b'.');
        let e = unpickle(&p).unwrap_err();
        assert!(e.contains("max_pickle_values"), "{e}");
        // Marks without end.
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b'(', 5_000_000));
        let e = unpickle(&p).unwrap_err();
        assert!(e.contains("max_pickle_stack"), "{e}");
    }
}
