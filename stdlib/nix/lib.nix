# ncsh's `lib`: the library NixOS configurations are handed as `lib`.
#
# Written for ncsh from the documented behaviour of nixpkgs' lib (no code copied): each function
# gives the same result as nixpkgs' function of the same name for the same inputs. It takes no
# arguments, imports nothing, and uses only the builtins ncsh's own evaluator implements (no
# storeDir, getEnv, unsafeDiscardStringContext, fromTOML, …; where nixpkgs needs one, the
# difference is noted at the function). The module system itself (evalModules, nixosSystem) is not here:
# ncsh's Rust side interprets the markers this file builds (mkIf, mkMerge, mkOverride, mkOrder,
# mkOption, option types).
#
# Where this lib differs from nixpkgs on purpose:
# - types.*.check is a plain predicate testing the value's head only, as nixpkgs' does (listOf
#   checks "is a list"); merge functions, functors and getSubOptions are not provided, the
#   module system in Rust reads name, description, check and the composite fields instead.
# - types.package accepts any string or path (nixpkgs: only store paths), since ncsh's builder
#   takes host packages; isStorePath and pathInStore take the store to be /nix/store.
# - mkAliasOptionModule, mkRenamedOptionModule, mkRemovedOptionModule, mkMergedOptionModule
#   and mkChangedOptionModule return function modules (`{ config, options ? { }, ... }: …`)
#   built from plain options and definitions; see doRename for what they simplify.
# - Nothing that needs the store, the environment, the file system beyond readFile, or
#   evalModules (lib.evalModules, nixosSystem, sources, filesystem, customisation, systems).
let
  inherit (builtins)
    attrNames attrValues concatLists concatStringsSep elem elemAt filter foldl' genList head
    isAttrs isBool isFloat isInt isList isPath isString length listToAttrs map match
    replaceStrings split stringLength substring tail toJSON typeOf;

  # ---------------------------------------------------------------- trivial

  # The identity function.
  id = x: x;
  # A function that ignores its second argument and returns the first.
  const = x: _: x;
  # Applies `f` to its two arguments in the other order.
  flip = f: a: b: f b a;
  # Threads `val` through the list of functions, first to last.
  pipe = val: functions: foldl' (x: f: f x) val functions;
  # List concatenation as a function.
  concat = x: y: x ++ y;
  # Boolean or as a function.
  or' = x: y: x || y;
  # Boolean and as a function.
  and' = x: y: x && y;
  # Boolean exclusive or.
  xor = x: y: (!x) != (!y);
  # Bitwise not of an integer.
  bitNot = x: -1 - x;
  # "true" or "false".
  boolToString = b: if b then "true" else "false";
  # Right-biased union of two attribute sets.
  mergeAttrs = x: y: x // y;
  # Applies `f` unless the value is null.
  mapNullable = f: a: if a == null then a else f a;
  # The smaller of two values.
  min = x: y: if x < y then x else y;
  # The larger of two values.
  max = x: y: if x > y then x else y;
  # Integer remainder with the sign of the dividend.
  mod = base: int: base - (int * (builtins.div base int));
  # -1, 0 or 1 as `a` is less than, equal to or greater than `b`.
  compare = a: b: if a < b then -1 else if a > b then 1 else 0;
  # A comparison: values satisfying `p` first, compared by `yes` among them and by `no` among the rest.
  splitByAndCompare = p: yes: no: a: b:
    if p a then (if p b then yes a b else -1) else if p b then 1 else no a b;
  # Reads a JSON file.
  importJSON = path: builtins.fromJSON (builtins.readFile path);
  # Prints a warning (on stderr) and returns the value.
  warn = msg: builtins.trace "evaluation warning: ${msg}";
  # Warns when the condition holds.
  warnIf = cond: msg: if cond then warn msg else id;
  # Warns unless the condition holds.
  warnIfNot = cond: msg: if cond then id else warn msg;
  # Throws `msg` when the condition holds, otherwise returns the value.
  throwIf = cond: msg: if cond then throw msg else id;
  # Throws `msg` unless the condition holds, otherwise returns the value.
  throwIfNot = cond: msg: if cond then id else throw msg;
  # Prints an informational message (on stderr) and returns the value.
  info = msg: builtins.trace "INFO: ${msg}";
  # Prints each warning, then returns the value.
  showWarnings = warnings: res: foldr (w: x: warn w x) res warnings;
  # Throws unless every element of `given` is one of `valid`.
  checkListOfEnum = msg: valid: given:
    let unexpected = subtractLists valid given;
    in throwIfNot (unexpected == [ ])
      "${msg}: ${concatStringsSep ", " (map toString unexpected)} unexpected; valid ones: ${concatStringsSep ", " (map toString valid)}";
  # Whether a value can be called: a function, or a set with a `__functor`.
  isFunction = f: builtins.isFunction f || (f ? __functor && isFunction (f.__functor f));
  # The formal arguments of a function (`{ a ? 1, b }:` gives { a = true; b = false; }), functors too.
  functionArgs = f:
    if f ? __functor then f.__functionArgs or (functionArgs (f.__functor f)) else builtins.functionArgs f;
  # A value that is a function itself, or a constant function returning it.
  toFunction = v: if isFunction v then v else _: v;
  # The fixed point of `f`: the `x` with `x == f x`.
  fix = f: let x = f x; in x;
  # Extends a fixed-point function with an overlay `final: prev: { … }`.
  extends = overlay: f: final: let prev = f final; in prev // overlay final prev;
  # The digits of `i` in base `base`, most significant first.
  toBaseDigits = base: i:
    let
      go = i: if i < base then [ i ] else go (builtins.div i base) ++ [ (mod i base) ];
    in
    assert base >= 2; assert i >= 0; go i;
  # Upper-case hexadecimal digits of a non-negative integer.
  toHexString = i:
    concatMapStrings (d: elemAt (stringToCharacters "0123456789ABCDEF") d) (toBaseDigits 16 i);
  # Whether a value is a derivation.
  isDerivation = value: value.type or null == "derivation";
  # Whether an attribute set is of a `_type` (as the module system marks its values).
  isType = type: x: (x._type or "") == type;
  # Marks an attribute set with a `_type`.
  setType = typeName: value: value // { _type = typeName; };

  # Addition, subtraction and comparison as functions.
  add = builtins.add;
  sub = x: y: x - y;
  lessThan = builtins.lessThan;
  # `maybeValue` unless it is null, then `default`.
  defaultTo = default: maybeValue: if maybeValue != null then maybeValue else default;
  # The integer a hexadecimal string ("ff", "0xFF") spells; at most 16 digits as nixpkgs allows.
  fromHexString = str:
    let
      m = match "(0x)?([0-7]?[0-9A-Fa-f]{1,15})" str;
      digit = c: let i = findFirstIndex (d: d == c) null (stringToCharacters "0123456789abcdef"); in i;
    in
    if m == null then throw "fromHexString: invalid input ${escapeNixString str}"
    else foldl' (acc: c: acc * 16 + digit c) 0 (stringToCharacters (toLower (elemAt m 1)));
  # `g` reporting the argument names of `f` (for functions that wrap another).
  mirrorFunctionArgs = f: g: trivial.setFunctionArgs g (functionArgs f);
  # The NixOS release this lib mimics.
  release = "25.11";
  trivial = {
    inherit id const flip pipe concat xor bitNot boolToString mergeAttrs mapNullable min max mod
      compare splitByAndCompare importJSON warn warnIf warnIfNot throwIf throwIfNot info
      showWarnings checkListOfEnum toFunction toBaseDigits toHexString release add sub lessThan
      defaultTo fromHexString mirrorFunctionArgs;
    # Boolean or as a function (the name is quoted: `or` is also a keyword of Nix).
    "or" = or';
    # Boolean and as a function.
    and = and';
    inherit isFunction functionArgs;
    inherit (builtins) bitAnd bitOr bitXor seq deepSeq isInt isBool isFloat isString isList
      isAttrs pathExists readFile genericClosure;
    # The version of this lib, the NixOS release it mimics.
    version = release;
    # The release's code name.
    codeName = "Xantusia";
    # The oldest release this lib's callers may assume.
    oldestSupportedRelease = 2505;
    # Whether a release (YYMM) is no newer than the oldest supported one.
    isInOldestRelease = r: r <= 2505;
    # Whether the oldest supported release is `r` (YYMM) or newer.
    oldestSupportedReleaseIsAtLeast = r: r <= 2505;
    # Never in a nix-shell here.
    inNixShell = false;
    # Sets the argument names a function reports by making it a functor.
    setFunctionArgs = f: args: { __functor = self: f; __functionArgs = args; };
    # The fixed point of a function (also in lib.fixedPoints).
    inherit fix;
  };

  # Like fix, but the result also carries `__unfix__`, the function it was made from.
  fix' = f: let x = f x // { __unfix__ = f; }; in x;
  # Applies `f` from `x` until the value no longer changes.
  converge = f: x: let x' = f x; in if x' == x then x else converge f x';
  # One overlay doing what `f` then `g` do.
  composeExtensions = f: g: final: prev:
    let
      fApplied = f final prev;
      prev' = prev // fApplied;
    in
    fApplied // g final prev';
  # One overlay doing what the listed overlays do, in order.
  composeManyExtensions = foldr (x: y: composeExtensions x y) (final: prev: { });
  # A fixed point with `extend` (and `__unfix__`) to add overlays later.
  makeExtensible = makeExtensibleWithCustomName "extend";
  # makeExtensible with the extending function under another name.
  makeExtensibleWithCustomName = extenderName: rattrs:
    fix' (self: (rattrs self) // {
      ${extenderName} = f: makeExtensibleWithCustomName extenderName (extends f rattrs);
    });
  # An overlay from an overlay, a function of `prev`, or a plain set.
  toExtension = f:
    if isFunction f then
      final: prev:
        let fPrev = f prev;
        in if isFunction fPrev then f final prev else fPrev
    else final: prev: f;

  # ---------------------------------------------------------------- lists

  # Left fold, lazy in the accumulator.
  foldl = op: nul: list:
    let go = n: if n == -1 then nul else op (go (n - 1)) (elemAt list n);
    in go (length list - 1);
  # Right fold: `op x1 (op x2 (… nul))`.
  foldr = op: nul: list:
    let
      len = length list;
      go = n: if n == len then nul else op (elemAt list n) (go (n + 1));
    in
    go 0;
  # Alias of foldr.
  fold = foldr;
  # Maps with the 0-based index: `f i x`.
  imap0 = f: list: genList (n: f n (elemAt list n)) (length list);
  # Maps with the 1-based index: `f i x`.
  imap1 = f: list: genList (n: f (n + 1) (elemAt list n)) (length list);
  # Filters with the 0-based index: `p i x`.
  ifilter0 = p: list:
    map (i: elemAt list i) (filter (i: p i (elemAt list i)) (genList id (length list)));
  # `[ x ]` when the condition holds, otherwise `[ ]`.
  optional = cond: elem: if cond then [ elem ] else [ ];
  # The list when the condition holds, otherwise `[ ]`.
  optionals = cond: elems: if cond then elems else [ ];
  # A list stays, anything else becomes a one-element list.
  toList = x: if isList x then x else [ x ];
  # A one-element list.
  singleton = x: [ x ];
  # `map` with the arguments swapped.
  forEach = xs: f: map f xs;
  # Flattens nested lists; a non-list becomes a one-element list.
  flatten = x: if isList x then builtins.concatMap flatten x else [ x ];
  # The list without the elements equal to `e`.
  remove = e: filter (x: x != e);
  # Integers from `first` to `last`, both included (empty when first > last).
  range = first: last: if first > last then [ ] else genList (n: first + n) (last - first + 1);
  # A list of `n` copies of `elem`.
  replicate = n: elem: genList (_: elem) n;
  # The last element; fails on an empty list.
  last = list:
    assert assertMsg (list != [ ]) "lists.last: list must not be empty!";
    elemAt list (length list - 1);
  # All but the last element; fails on an empty list.
  init = list:
    assert assertMsg (list != [ ]) "lists.init: list must not be empty!";
    take (length list - 1) list;
  # The first `count` elements (all of them when the list is shorter).
  take = count: sublist 0 count;
  # The list without its first `count` elements.
  drop = count: list: sublist count (length list) list;
  # The last `n` elements.
  takeEnd = n: xs: drop (max 0 (length xs - n)) xs;
  # The list without its last `n` elements.
  dropEnd = n: xs: take (max 0 (length xs - n)) xs;
  # `count` elements from index `start`, cut at the end of the list.
  sublist = start: count: list:
    let len = length list;
    in genList (n: elemAt list (n + start))
      (if start >= len then 0 else if start + count > len then len - start else count);
  # The list in reverse order.
  reverseList = xs: let l = length xs; in genList (n: elemAt xs (l - n - 1)) l;
  # How many elements satisfy the predicate.
  count = pred: foldl' (c: x: if pred x then c + 1 else c) 0;
  # Index of the first element satisfying `pred`, or `default`; stops testing at the first hit.
  findFirstIndex = pred: default: list:
    let
      r = foldl' (i: x: if i < 0 then (if pred x then -i - 1 else i - 1) else i) (-1) list;
    in
    if r < 0 then default else r;
  # The first element satisfying `pred`, or `default`.
  findFirst = pred: default: list:
    let i = findFirstIndex pred null list;
    in if i == null then default else elemAt list i;
  # The only element satisfying `pred`; `default` when none does, `multiple` when several do.
  findSingle = pred: default: multiple: list:
    let
      found = filter pred list;
      n = length found;
    in
    if n == 0 then default else if n != 1 then multiple else head found;
  # Combines two lists element-wise with `f`, as long as the shorter one.
  zipListsWith = f: fst: snd:
    genList (n: f (elemAt fst n) (elemAt snd n)) (min (length fst) (length snd));
  # Pairs two lists element-wise into `{ fst; snd; }`.
  zipLists = zipListsWith (fst: snd: { inherit fst snd; });
  # The elements of the second list that are in the first.
  intersectLists = e: filter (x: elem x e);
  # The elements of the second list that are not in the first.
  subtractLists = e: filter (x: !(elem x e));
  # Whether the two lists have no element in common.
  mutuallyExclusive = a: b: length a == 0 || !(any (x: elem x a) b);
  # The list without repeated elements, first occurrence kept.
  unique = foldl' (acc: e: if elem e acc then acc else acc ++ [ e ]) [ ];
  # Whether no element occurs twice.
  allUnique = list: length (unique list) == length list;
  # Compares two lists lexicographically with `cmp` (-1, 0, 1).
  compareLists = cmp: a: b:
    if a == [ ] then (if b == [ ] then 0 else -1)
    else if b == [ ] then 1
    else
      let rel = cmp (head a) (head b);
      in if rel == 0 then compareLists cmp (tail a) (tail b) else rel;
  # Sorts by the key `f x` (computed once per element).
  sortOn = f: list:
    map (p: elemAt p 1) (builtins.sort (a: b: head a < head b) (map (x: [ (f x) x ]) list));
  # Sorts strings with their runs of digits compared as numbers.
  naturalSort = lst:
    let
      vectorise = s: map (x: if isList x then toInt (head x) else x) (split "(0|[1-9][0-9]*)" s);
      prepared = map (x: [ (vectorise x) x ]) lst;
      less = a: b: (compareLists compare (head a) (head b)) < 0;
    in
    map (x: elemAt x 1) (builtins.sort less prepared);
  # Groups by `pred x` and folds each group with `op` from `nul`.
  groupBy' = op: nul: pred: lst: builtins.mapAttrs (_: foldl op nul) (builtins.groupBy pred lst);
  # The distinct strings of a list, sorted.
  uniqueStrings = list: attrNames (builtins.groupBy id list);
  # Whether the list starts with the elements of `list1`.
  listHasPrefix = list1: list2: take (length list1) list2 == list1;
  # The cartesian product of lists of an attribute set, as a list of attribute sets.
  cartesianProduct = attrsOfLists:
    foldl'
      (listOfAttrs: attrName:
        builtins.concatMap
          (attrs: map (listValue: attrs // { ${attrName} = listValue; }) attrsOfLists.${attrName})
          listOfAttrs)
      [ { } ]
      (attrNames attrsOfLists);
  # `f` applied to each combination of the lists of an attribute set.
  mapCartesianProduct = f: attrsOfLists: map f (cartesianProduct attrsOfLists);
  # Depth-first search from the head of `list` for an element nothing is `before`:
  # `{ minimal; visited; rest; }`, or with `stopOnCycles` `{ cycle; loops; visited; rest; }`.
  listDfs = stopOnCycles: before: list:
    let
      walk = current: seen: pending:
        let
          loopsBack = filter (x: before x current) seen;
          byOrder = builtins.partition (x: before x current) pending;
          earlier = byOrder.right;
        in
        if stopOnCycles && loopsBack != [ ] then
          { cycle = current; loops = loopsBack; visited = seen; rest = pending; }
        else if earlier == [ ] then
          { minimal = current; visited = seen; rest = pending; }
        else
          walk (head earlier) ([ current ] ++ seen) (tail earlier ++ byOrder.wrong);
    in
    walk (head list) [ ] (tail list);
  # The list sorted so that `before a b` puts a first: `{ result; }`, or `{ cycle; loops; }`.
  toposort = before: list:
    if length list < 2 then { result = list; }
    else
      let
        found = listDfs true before list;
        sortedRest = toposort before (found.visited ++ found.rest);
      in
      if found ? cycle then { cycle = reverseList ([ found.cycle ] ++ found.visited); inherit (found) loops; }
      else if sortedRest ? cycle then sortedRest
      else { result = [ found.minimal ] ++ sortedRest.result; };
  inherit (builtins) any all;

  lists = {
    inherit foldl foldr fold imap0 imap1 ifilter0 optional optionals toList singleton forEach
      flatten remove range replicate last init take drop takeEnd dropEnd sublist reverseList
      count findFirstIndex findFirst findSingle zipListsWith zipLists intersectLists
      subtractLists mutuallyExclusive unique uniqueStrings allUnique listDfs toposort compareLists sortOn naturalSort groupBy'
      any all;
    # Alias of imap1.
    imap = imap1;
    # Whether the second list starts with the first (the list version, only in lib.lists).
    hasPrefix = listHasPrefix;
    # Strict left fold (the builtin).
    foldl' = foldl';
    inherit (builtins) concatLists concatMap elem elemAt filter genList groupBy head isList
      length map partition sort tail;
    # `f` applied to each combination of one element from each list (deprecated in nixpkgs).
    crossLists = f: foldl (fs: args: builtins.concatMap (f: map f args) fs) [ f ];
  };

  # ---------------------------------------------------------------- strings

  # Concatenates a list of strings.
  concatStrings = builtins.concatStringsSep "";
  # Maps each element to a string and concatenates.
  concatMapStrings = f: list: concatStrings (map f list);
  # Like concatMapStrings with the 1-based index: `f i x`.
  concatImapStrings = f: list: concatStrings (imap1 f list);
  # Maps each element to a string and joins with `sep`.
  concatMapStringsSep = sep: f: list: concatStringsSep sep (map f list);
  # Like concatMapStringsSep with the 1-based index.
  concatImapStringsSep = sep: f: list: concatStringsSep sep (imap1 f list);
  # Maps each attribute `f name value` to a string and joins with `sep`.
  concatMapAttrsStringSep = sep: f: attrs: concatStringsSep sep (attrValues (builtins.mapAttrs f attrs));
  # Replaces every occurrence of `from` by `to`.
  replaceString = from: to: replaceStrings [ from ] [ to ];
  # The string without repeated slashes ("/a//b" is "/a/b").
  normalizePath = s: foldl' (x: y: if y == "/" && hasSuffix "/" x then x else x + y) "" (stringToCharacters s);
  # Length of the longest common prefix of two strings.
  commonPrefixLength = a: b:
    let
      m = min (stringLength a) (stringLength b);
      go = i: if i >= m then m else if substring i 1 a == substring i 1 b then go (i + 1) else i;
    in
    go 0;
  # Length of the longest common suffix of two strings.
  commonSuffixLength = a: b:
    let
      m = min (stringLength a) (stringLength b);
      go = i:
        if i >= m then m
        else if substring (stringLength a - i - 1) 1 a == substring (stringLength b - i - 1) 1 b then go (i + 1)
        else i;
    in
    go 0;
  # Whether `toString` accepts the value (strings, paths, numbers, bools, null, lists of those).
  isConvertibleWithToString = x:
    isStringLike x || elem (typeOf x) [ "null" "int" "float" "bool" ] || (isList x && all isConvertibleWithToString x);
  # Splits where `predicate prev curr` holds on adjacent characters, keeping the split character if asked.
  splitStringBy = predicate: keepSplit: str:
    let
      len = stringLength str;
      go = pos: part: result:
        if pos == len then result ++ [ part ]
        else
          let
            curr = substring pos 1 str;
            prev = if pos > 0 then substring (pos - 1) 1 str else "";
          in
          if predicate prev curr
          then go (pos + 1) (if keepSplit then curr else "") (result ++ [ part ])
          else go (pos + 1) (part + curr) result;
    in
    if len == 0 then [ (addContextFrom str "") ] else map (addContextFrom str) (go 0 "" [ ]);
  # The printable ASCII characters with tab, newline and carriage return, mapped to their codes.
  asciiTable =
    listToAttrs (imap0 (i: c: nameValuePair c (i + 32))
      (stringToCharacters " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"))
    // { "\t" = 9; "\n" = 10; "\r" = 13; };
  # The ASCII code of a (printable, tab, newline or CR) character.
  charToInt = c: builtins.getAttr c asciiTable;
  # Replaces each character of `list` by "\xHH".
  escapeC = list: replaceStrings list (map (c: "\\x${fixedWidthString 2 "0" (toLower (toHexString (charToInt c)))}") list);
  # Percent-encodes everything but unreserved URL characters (A-Z a-z 0-9 - _ . ~).
  escapeURL =
    let
      unreserved = stringToCharacters "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~";
      toEscape = removeAttrs asciiTable unreserved;
    in
    replaceStrings (attrNames toEscape) (mapAttrsToList (_: c: "%${fixedWidthString 2 "0" (toHexString c)}") toEscape);
  # camelCase of a snake_case, kebab-case, PascalCase or space-separated string.
  toCamelCase = str:
    throwIfNot (isString str) "toCamelCase does only accepts string values, but got ${typeOf str}" (
      let
        separators = splitStringBy (prev: curr: elem curr [ "-" "_" " " ]) false str;
        parts = flatten (map (splitStringBy (prev: curr: match "[a-z]" prev != null && match "[A-Z]" curr != null) true) separators);
        first = if length parts > 0 then toLower (head parts) else "";
        rest = if length parts > 1 then map toSentenceCase (tail parts) else [ ];
      in
      concatStrings (map (addContextFrom str) ([ first ] ++ rest)));
  # Each string followed by a newline, concatenated.
  concatLines = concatMapStrings (s: s + "\n");
  # The string when the condition holds, otherwise "".
  optionalString = cond: string: if cond then string else "";
  # The characters of a string, as one-character strings.
  stringToCharacters = s: genList (p: substring p 1 s) (stringLength s);
  # Maps each character with `f` and concatenates.
  stringAsChars = f: s: concatMapStrings f (stringToCharacters s);
  # Whether `str` starts with `pref`.
  hasPrefix = pref: str: substring 0 (stringLength pref) str == pref;
  # Whether `content` ends with `suffix`.
  hasSuffix = suffix: content:
    let
      lc = stringLength content;
      ls = stringLength suffix;
    in
    lc >= ls && substring (lc - ls) lc content == suffix;
  # Whether `infix` occurs in `content`.
  hasInfix = infix: content:
    let
      s = toString content;
      li = stringLength infix;
      ls = stringLength s;
    in
    li <= ls && any (i: substring i li s == infix) (genList id (ls - li + 1));
  # The string without `prefix` at its start (unchanged when it does not start with it).
  removePrefix = prefix: str:
    let lp = stringLength prefix;
    in if hasPrefix prefix str then substring lp (stringLength str - lp) str else str;
  # The string without `suffix` at its end (unchanged when it does not end with it).
  removeSuffix = suffix: str:
    let
      ls = stringLength suffix;
      lstr = stringLength str;
    in
    if hasSuffix suffix str then substring 0 (lstr - ls) str else str;
  # Prefixes each character of `list` in the string with a backslash.
  escape = list: replaceStrings list (map (c: "\\${c}") list);
  # The string with the regular expression's special characters escaped.
  escapeRegex = escape (stringToCharacters "\\[{()^$?*+|.");
  # A Nix string literal for the string.
  escapeNixString = s: escape [ "$" ] (toJSON s);
  # The string as a Nix attribute name: bare when it is an identifier, quoted otherwise.
  escapeNixIdentifier = s:
    if match "[a-zA-Z_][a-zA-Z0-9_'-]*" s != null then s else escapeNixString s;
  # The string with the five XML special characters as entities.
  escapeXML = replaceStrings [ "\"" "'" "<" ">" "&" ] [ "&quot;" "&apos;" "&lt;" "&gt;" "&amp;" ];
  # The argument quoted for a POSIX shell (bare when it needs no quoting).
  escapeShellArg = arg:
    let s = toString arg;
    in if match "[[:alnum:],._+:@%/-]+" s == null
      then "'${replaceStrings [ "'" ] [ "'\\''" ] s}'"
      else s;
  # Each argument quoted for the shell, joined by spaces.
  escapeShellArgs = concatMapStringsSep " " escapeShellArg;
  # Whether the string is a valid POSIX shell variable name.
  isValidPosixName = name: match "[a-zA-Z_][a-zA-Z0-9_]*" name != null;
  # A bash assignment of `value` to `name`: scalar, indexed array (list) or associative array (set).
  toShellVar = name: value:
    throwIfNot (isValidPosixName name) "toShellVar: ${name} is not a valid shell variable name" (
      if isAttrs value && !isStringLike value then
        "declare -A ${name}=(${concatStringsSep " " (mapAttrsToList (n: v: "[${escapeShellArg n}]=${escapeShellArg v}") value)})"
      else if isList value then
        "declare -a ${name}=(${escapeShellArgs value})"
      else
        "${name}=${escapeShellArg value}"
    );
  # toShellVar of each attribute, one per line.
  toShellVars = vars: concatStringsSep "\n" (mapAttrsToList toShellVar vars);
  # Whether a value can be interpolated into a string without `toString`.
  isStringLike = x: isString x || isPath x || x ? outPath || x ? __toString;
  # Whether a value is a store path itself (not below one). The store is /nix/store here
  # (nixpkgs asks the evaluator for its store directory; ncsh's evaluator has none).
  isStorePath = x:
    if isStringLike x then
      let str = toString x;
      in substring 0 1 str == "/" && (builtins.dirOf str == "/nix/store" || match "/[0-9a-z]{52}" str != null)
    else false;
  # The lower-case and upper-case ASCII letters, as lists of characters.
  lowerChars = stringToCharacters "abcdefghijklmnopqrstuvwxyz";
  upperChars = stringToCharacters "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  # The string in lower case (ASCII letters only).
  toLower = replaceStrings upperChars lowerChars;
  # The string in upper case (ASCII letters only).
  toUpper = replaceStrings lowerChars upperChars;
  # The string with its first character in upper case and the rest in lower case.
  toSentenceCase = str:
    let
      firstChar = substring 0 1 str;
      rest = substring 1 (stringLength str) str;
    in
    addContextFrom str (toUpper firstChar + toLower rest);
  # `b` with the string context of `a`.
  addContextFrom = a: b: substring 0 0 a + b;
  # Splits `s` at each occurrence of `sep` (a plain string, not a regular expression).
  splitString = sep: s:
    let parts = filter isString (split (escapeRegex (toString sep)) (toString s));
    in map (addContextFrom s) parts;
  # Whether version `v1` is older than `v2`.
  versionOlder = v1: v2: builtins.compareVersions v2 v1 == 1;
  # Whether version `v1` is `v2` or newer.
  versionAtLeast = v1: v2: !versionOlder v1 v2;
  # The name part of a package (a derivation or a "name-version" string).
  getName = x:
    let parse = drv: (builtins.parseDrvName drv).name;
    in if isString x then parse x else x.pname or (parse x.name);
  # The version part of a package (a derivation or a "name-version" string).
  getVersion = x:
    let parse = drv: (builtins.parseDrvName drv).version;
    in if isString x then parse x else x.version or (parse x.name);
  # "SUBDIR" of each non-null path, joined by ":".
  makeSearchPath = subDir: paths:
    concatStringsSep ":" (map (path: path + "/" + subDir) (filter (x: x != null) paths));
  # makeSearchPath over the `output` output of each package.
  makeSearchPathOutput = output: subDir: pkgs: makeSearchPath subDir (map (getOutput output) pkgs);
  # The `bin` directories of the packages' `bin` outputs, for PATH.
  makeBinPath = makeSearchPathOutput "bin" "bin";
  # The `lib` directories of the packages' `lib` outputs, for LD_LIBRARY_PATH.
  makeLibraryPath = makeSearchPathOutput "lib" "lib";
  # The `include` directories of the packages' `dev` outputs.
  makeIncludePath = makeSearchPathOutput "dev" "include";
  # "--enable-F" or "--disable-F".
  enableFeature = flag: feature: "--${if flag then "enable" else "disable"}-${feature}";
  # "--enable-F=V" when the flag holds, "--disable-F" otherwise.
  enableFeatureAs = flag: feature: value:
    enableFeature flag feature + optionalString flag "=${value}";
  # "--with-F" or "--without-F".
  withFeature = flag: feature: "--${if flag then "with" else "without"}-${feature}";
  # "--with-F=V" when the flag holds, "--without-F" otherwise.
  withFeatureAs = flag: feature: value: withFeature flag feature + optionalString flag "=${value}";
  # `str` padded on the left with `filler` to `width` characters; fails when it is longer.
  fixedWidthString = width: filler: str:
    let
      strw = stringLength str;
      reqWidth = width - (stringLength filler);
    in
    assert assertMsg (strw <= width)
      "fixedWidthString: requested string length (${toString width}) must not be shorter than actual length (${toString strw})";
    if strw == width then str else filler + fixedWidthString reqWidth filler str;
  # The number padded with zeros on the left to `width` digits.
  fixedWidthNumber = width: n: fixedWidthString width "0" (toString n);
  # A float as `toString` writes it, warning when that loses precision.
  floatToString = float:
    let result = toString float;
    in warnIf (float != builtins.fromJSON result) "Imprecise conversion from float to string ${result}" result;
  # The separator between each two elements of the list.
  intersperse = separator: list:
    if list == [ ] || length list == 1 then list
    else tail (builtins.concatMap (x: [ separator x ]) list);
  # The string repeated `n` times.
  stringsReplicate = n: s: concatStrings (replicate n s);
  # The string without the whitespace (space, tab, CR, LF) chosen at its start and/or end.
  trimWith = { start ? false, end ? false }: s:
    let
      chars = " \t\r\n";
      regex =
        if start && end then "[${chars}]*(.*[^${chars}])[${chars}]*"
        else if start then "[${chars}]*(.*)"
        else if end then "(.*[^${chars}])[${chars}]*"
        else "(.*)";
      res = match regex s;
    in
    optionalString (res != null) (head res);
  # The string without whitespace at both ends.
  trim = trimWith { start = true; end = true; };
  # The integer a string spells (surrounding whitespace allowed); fails on leading zeros.
  toInt = str:
    let
      stripped = match "[[:space:]]*(-?[[:digit:]]+)[[:space:]]*" str;
      leadingZero = match "0[[:digit:]]+" (head stripped) == [ ];
      parsed = builtins.fromJSON (head stripped);
    in
    if stripped == null then throw "toInt: Could not convert ${escapeNixString str} to int."
    else if leadingZero then
      throw "toInt: Ambiguity in interpretation of ${escapeNixString str} between octal and zero padded integer."
    else if !isInt parsed then throw "toInt: Could not convert ${escapeNixString str} to int."
    else parsed;
  # The integer a string spells in base 10 (leading zeros allowed).
  toIntBase10 = str:
    let
      stripped = match "[[:space:]]*0*(-?[[:digit:]]+)[[:space:]]*" str;
      isZero = match "0+" (head stripped) == [ ];
      parsed = builtins.fromJSON (head stripped);
    in
    if stripped == null then throw "toIntBase10: Could not convert ${escapeNixString str} to int."
    else if isZero then 0
    else if !isInt parsed then throw "toIntBase10: Could not convert ${escapeNixString str} to int."
    else parsed;
  # A file's contents without one trailing newline.
  fileContents = file: removeSuffix "\n" (builtins.readFile file);
  # The lines of a file, read as paths (empty lines dropped).
  readPathsFromFile = rootPath: file:
    map (x: rootPath + ("/" + x)) (filter (x: x != "") (splitString "\n" (builtins.readFile file)));
  # The name of a URL's last component up to the first `sep`.
  nameFromURL = url: sep:
    let
      components = splitString "/" url;
      filename = last components;
      name = head (splitString sep filename);
    in
    assert name != filename; name;
  # A valid derivation name made from any string: no leading dots, invalid runs as "-",
  # at most 207 characters, "unknown" when nothing is left.
  sanitizeDerivationName = string:
    if stringLength string <= 207 && match "[[:alnum:]+_?=-][[:alnum:]+._?=-]*" string != null then string
    else
      pipe string [
        (x: elemAt (match "\\.*(.*)" x) 0)
        (split "[^[:alnum:]+._?=-]+")
        (concatMapStrings (s: if isList s then "-" else s))
        (x: let l = stringLength x; start = max (l - 207) 0; in substring start (l - start) x)
        (x: if stringLength x == 0 then "unknown" else x)
      ];
  # A CMake "-DNAME:TYPE=VALUE" flag.
  cmakeOptionType = type: feature: value: "-D${feature}:${toUpper type}=${value}";
  # A CMake boolean flag.
  cmakeBool = condition: flag: cmakeOptionType "bool" condition (toUpper (boolToString flag));
  # A CMake string flag.
  cmakeFeature = feature: value: cmakeOptionType "string" feature value;
  # A Meson "-DNAME=VALUE" flag.
  mesonOption = feature: value: "-D${feature}=${value}";
  # A Meson boolean flag.
  mesonBool = condition: flag: mesonOption condition (boolToString flag);
  # A Meson feature flag: enabled or disabled.
  mesonEnable = feature: flag: mesonOption feature (if flag then "enabled" else "disabled");

  strings = {
    inherit concatStrings concatMapStrings concatImapStrings concatMapStringsSep
      concatImapStringsSep concatMapAttrsStringSep concatLines optionalString
      stringToCharacters stringAsChars hasPrefix hasSuffix hasInfix removePrefix removeSuffix
      escape escapeRegex escapeNixString escapeNixIdentifier escapeXML escapeShellArg
      escapeShellArgs isValidPosixName toShellVar toShellVars isStringLike isStorePath
      lowerChars upperChars toLower toUpper toSentenceCase addContextFrom splitString
      versionOlder versionAtLeast getName getVersion makeSearchPath makeSearchPathOutput
      makeBinPath makeLibraryPath makeIncludePath enableFeature enableFeatureAs withFeature
      withFeatureAs fixedWidthString fixedWidthNumber floatToString intersperse trimWith trim
      toInt toIntBase10 fileContents readPathsFromFile nameFromURL cmakeOptionType cmakeBool
      cmakeFeature mesonOption mesonBool mesonEnable replaceString normalizePath
      commonPrefixLength commonSuffixLength isConvertibleWithToString splitStringBy charToInt
      escapeC escapeURL toCamelCase sanitizeDerivationName;
    # Alias of concatStringsSep.
    join = concatStringsSep;
    # The string repeated n times (the string version, only in lib.strings).
    replicate = stringsReplicate;
    inherit (builtins) compareVersions concatStringsSep elem elemAt filter fromJSON genList
      head isInt isList isAttrs isPath isString match parseDrvName readFile replaceStrings
      split stringLength substring tail toJSON typeOf;
    # Replaces characters (alias of replaceStrings).
    replaceChars = replaceStrings;
  };

  # ---------------------------------------------------------------- attrsets

  # `{ name; value; }`, the element listToAttrs takes.
  nameValuePair = name: value: { inherit name value; };
  # The set when the condition holds, otherwise `{ }`.
  optionalAttrs = cond: as: if cond then as else { };
  # A set with each name of the list bound to `f name`.
  genAttrs = names: f: listToAttrs (map (n: nameValuePair n (f n)) names);
  # `f name value` for each attribute, in name order.
  mapAttrsToList = f: attrs: map (name: f name attrs.${name}) (attrNames attrs);
  # `{ name; value; }` of each attribute, in name order.
  attrsToList = mapAttrsToList nameValuePair;
  # A set from `f name value`, which returns a nameValuePair.
  mapAttrs' = f: set: listToAttrs (map (attr: f attr set.${attr}) (attrNames set));
  # Maps `f path value` over the leaves of nested sets, recursing where `cond set` holds.
  mapAttrsRecursiveCond = cond: f: set:
    let
      recurse = path:
        builtins.mapAttrs (name: value:
          if isAttrs value && cond value then recurse (path ++ [ name ]) value
          else f (path ++ [ name ]) value);
    in
    recurse [ ] set;
  # Maps `f path value` over the leaves of nested sets.
  mapAttrsRecursive = mapAttrsRecursiveCond (_: true);
  # The attributes for which `pred name value` holds.
  filterAttrs = pred: set:
    removeAttrs set (filter (name: !pred name set.${name}) (attrNames set));
  # filterAttrs applied at every level of nested sets.
  filterAttrsRecursive = pred: set:
    listToAttrs (builtins.concatMap (name:
      let v = set.${name}; in
      if pred name v then [ (nameValuePair name (if isAttrs v then filterAttrsRecursive pred v else v)) ]
      else [ ]) (attrNames set));
  # The union of `f name value` over the attributes (later names win).
  concatMapAttrs = f: v: foldl' mergeAttrs { } (attrValues (builtins.mapAttrs f v));
  # Folds `op name value acc` over the attributes in name order.
  foldlAttrs = f: init: set: foldl' (acc: name: f acc name set.${name}) init (attrNames set);
  # Folds each attribute's values across a list of sets: `op value acc`, from the right.
  foldAttrs = op: nul: list_of_attrs:
    foldr (n: a: foldr (name: o: o // { ${name} = op n.${name} (a.${name} or nul); }) a (attrNames n))
      { } list_of_attrs;
  # The leaves of nested sets for which `pred` holds (not recursing into matches).
  collect = pred: attrs:
    if pred attrs then [ attrs ]
    else if isAttrs attrs then builtins.concatMap (collect pred) (attrValues attrs)
    else [ ];
  # The value at an attribute path, or `default` when any step is missing.
  attrByPath = attrPath: default: set:
    let
      n = length attrPath;
      go = i: s:
        if i == n then s
        else
          let attr = elemAt attrPath i;
          in if s ? ${attr} then go (i + 1) s.${attr} else default;
    in
    go 0 set;
  # Whether an attribute path exists in the set (true for the empty path).
  hasAttrByPath = attrPath: e:
    let
      n = length attrPath;
      go = i: s:
        if i == n then true
        else
          let attr = elemAt attrPath i;
          in if s ? ${attr} then go (i + 1) s.${attr} else false;
    in
    go 0 e;
  # A nested set holding `value` at the attribute path.
  setAttrByPath = attrPath: value:
    let
      n = length attrPath;
      go = i: if i == n then value else { ${elemAt attrPath i} = go (i + 1); };
    in
    go 0;
  # The value at an attribute path; aborts when it is missing.
  getAttrFromPath = attrPath: set:
    attrByPath attrPath (abort ("cannot find attribute '" + concatStringsSep "." attrPath + "'")) set;
  # The values of the named attributes, in the list's order.
  attrVals = nameList: set: map (x: set.${x}) nameList;
  # zipAttrsWith restricted to the given names.
  zipAttrsWithNames = names: f: sets:
    listToAttrs (map (name: { inherit name; value = f name (builtins.catAttrs name sets); }) names);
  # The values of each attribute across a list of sets, as lists.
  zipAttrs = builtins.zipAttrsWith (name: values: values);
  # Merges `rhs` into `lhs` recursively, stopping where `pred path lhs rhs` holds.
  recursiveUpdateUntil = pred: lhs: rhs:
    let
      f = attrPath:
        builtins.zipAttrsWith (n: values:
          let here = attrPath ++ [ n ]; in
          if length values == 1 || pred here (elemAt values 1) (head values)
          then head values
          else f here values);
    in
    f [ ] [ rhs lhs ];
  # Merges `rhs` into `lhs` recursively where both sides are sets; `rhs` wins elsewhere.
  recursiveUpdate = recursiveUpdateUntil (path: lhs: rhs: !(isAttrs lhs && isAttrs rhs));
  # Whether `attrs` has every attribute of `pattern` with equal values (recursing into sets).
  matchAttrs = pattern: attrs:
    assert isAttrs pattern;
    all (attr:
      attrs ? ${attr} && (
        let lhs = pattern.${attr}; rhs = attrs.${attr}; in
        if isAttrs lhs then isAttrs rhs && matchAttrs lhs rhs else lhs == rhs))
      (attrNames pattern);
  # `new` restricted to the attributes `old` has, laid over `old`.
  overrideExisting = old: new: builtins.mapAttrs (name: value: new.${name} or value) old;
  # Union of two sets that must not share a name.
  unionOfDisjoint = x: y:
    let
      intersection = builtins.intersectAttrs x y;
      collisions = concatStringsSep " " (attrNames intersection);
      mask = builtins.mapAttrs (name: value: throw "unionOfDisjoint: collision on ${name}; complete list: ${collisions}") intersection;
    in
    (x // y) // mask;
  # The union of a list of sets, later ones winning.
  mergeAttrsList = list: foldl' mergeAttrs { } list;
  # The output `output` of a package (the package itself when it has none or one was chosen).
  getOutput = output: pkg:
    if !(pkg ? outputSpecified) || !pkg.outputSpecified then pkg.${output} or pkg.out or pkg else pkg;
  # The first of the named outputs a package has.
  getFirstOutput = candidates: pkg:
    let outputs = filter (name: builtins.hasAttr name pkg) candidates;
    in if pkg.outputSpecified or false || outputs == [ ] then pkg else pkg.${head outputs};
  # The `bin` output of a package.
  getBin = getOutput "bin";
  # The `lib` output of a package.
  getLib = getOutput "lib";
  # The `dev` output of a package.
  getDev = getOutput "dev";
  # The `man` output of a package.
  getMan = getOutput "man";
  # A set from `f x` for each element, `f` returning a nameValuePair.
  genAttrs' = xs: f: listToAttrs (map f xs);
  # An attribute path as Nix writes it: `a."b c"` (the empty path is "<root attribute path>").
  showAttrPath = path:
    if path == [ ] then "<root attribute path>" else concatMapStringsSep "." escapeNixIdentifier path;
  # The named attributes of a set (each must exist).
  getAttrs = names: attrs: genAttrs names (name: attrs.${name});
  # The `include` output (else `dev`, else `out`) of a package.
  getInclude = getFirstOutput [ "include" "dev" "out" ];
  # The `static` output (else `lib`, else `out`) of a package.
  getStatic = getFirstOutput [ "static" "lib" "out" ];
  # The `dev` outputs of a list of packages.
  chooseDevOutputs = map getDev;
  # Marks a set for recursion by nix-env / hydra.
  recurseIntoAttrs = attrs: attrs // { recurseForDerivations = true; };
  # Marks a set to be skipped by nix-env / hydra.
  dontRecurseIntoAttrs = attrs: attrs // { recurseForDerivations = false; };

  attrsets = {
    inherit nameValuePair optionalAttrs genAttrs mapAttrsToList attrsToList mapAttrs'
      mapAttrsRecursiveCond mapAttrsRecursive filterAttrs filterAttrsRecursive concatMapAttrs
      foldlAttrs foldAttrs collect attrByPath hasAttrByPath setAttrByPath getAttrFromPath
      attrVals zipAttrsWithNames zipAttrs recursiveUpdateUntil recursiveUpdate matchAttrs
      overrideExisting unionOfDisjoint mergeAttrsList getOutput getFirstOutput getBin getLib
      getDev getMan recurseIntoAttrs dontRecurseIntoAttrs isDerivation cartesianProduct
      mapCartesianProduct showAttrPath genAttrs' getAttrs getInclude getStatic chooseDevOutputs;
    # Deprecated alias of cartesianProduct.
    cartesianProductOfSets = cartesianProduct;
    # Deprecated alias of mapAttrsToList.
    mapAttrsFlatten = mapAttrsToList;
    # Deprecated aliases of zipAttrsWithNames and zipAttrsWith.
    zipWithNames = zipAttrsWithNames;
    zip = builtins.zipAttrsWith;
    inherit (builtins) attrNames attrValues catAttrs getAttr hasAttr intersectAttrs isAttrs
      listToAttrs mapAttrs removeAttrs zipAttrsWith;
  };

  # ---------------------------------------------------------------- meta

  # The path of a package's `bin/NAME`, NAME being `meta.mainProgram` (or, warned, its name).
  getExe = x:
    getExe' x (x.meta.mainProgram or (warn
      "getExe: package ${escapeNixIdentifier x.meta.name or x.pname or x.name} has no meta.mainProgram; assuming its program is bin/${getName x}. Set meta.mainProgram, or name the program with lib.getExe' PACKAGE \"PROGRAM\"."
      (getName x)));
  # The path of `bin/NAME` in a package's `bin` output.
  getExe' = x: y:
    assert assertMsg (isDerivation x) "lib.meta.getExe': The first argument is of type ${typeOf x}, but it should be a derivation instead.";
    assert assertMsg (isString y) "lib.meta.getExe': The second argument is of type ${typeOf y}, but it should be a string instead.";
    assert assertMsg (length (splitString "/" y) == 1) "lib.meta.getExe': The second argument \"${y}\" is a nested path with a \"/\" character, but it should just be the name of the executable instead.";
    "${getBin x}/bin/${y}";
  # The package with `meta` extended by `newAttrs`.
  addMetaAttrs = newAttrs: drv: drv // { meta = (drv.meta or { }) // newAttrs; };
  # The package with `meta.priority` set.
  setPrio = priority: addMetaAttrs { inherit priority; };
  # The package with a low installation priority (10).
  lowPrio = setPrio 10;
  # The package with a high installation priority (-10).
  hiPrio = setPrio (-10);
  # The package with `meta.hydraPlatforms = [ ]`, so Hydra does not build it.
  dontDistribute = drv: addMetaAttrs { hydraPlatforms = [ ]; } drv;
  # The package renamed.
  setName = name: drv: drv // { inherit name; };
  # The package renamed by `f` of its name.
  updateName = updater: drv: drv // { name = updater (drv.name); };
  # The package with "-SUFFIX" added to the name part of its name.
  appendToName = suffix: updateName (name:
    let x = builtins.parseDrvName name; in "${x.name}-${suffix}" + optionalString (x.version != "") "-${x.version}");
  # lowPrio / hiPrio of each package in a set.
  lowPrioSet = set: builtins.mapAttrs (_: lowPrio) set;
  hiPrioSet = set: builtins.mapAttrs (_: hiPrio) set;
  meta = {
    inherit getExe getExe' addMetaAttrs setPrio lowPrio hiPrio dontDistribute setName updateName
      appendToName lowPrioSet hiPrioSet;
  };

  # ---------------------------------------------------------------- asserts

  # True when `pred` holds, otherwise throws `msg`.
  assertMsg = pred: msg: pred || throw msg;
  # True when `val` is one of `xs`, otherwise throws naming `name`.
  assertOneOf = name: val: xs:
    assertMsg (elem val xs)
      "${name} must be one of ${toJSON xs}, but is: ${toJSON val}";
  # True when every element of `given` is one of `valid`, otherwise throws naming `name`.
  assertEachOneOf = name: vals: xs:
    assertMsg (all (val: elem val xs) vals)
      "each element in ${name} must be one of ${toJSON xs}, but is: ${toJSON vals}";
  asserts = { inherit assertMsg assertOneOf assertEachOneOf; };

  # ---------------------------------------------------------------- cli

  # Command-line arguments from a set: `{ v = true; o = "x"; I = [ 1 2 ]; n = null; }` gives
  # [ "-I" "1" "-I" "2" "-o" "x" "-v" ] (false and null are left out; long names get "--").
  toGNUCommandLine =
    { mkOptionName ? k: if stringLength k == 1 then "-${k}" else "--${k}"
    , mkBool ? k: v: optional v (mkOptionName k)
    , mkList ? k: v: builtins.concatMap (mkOption k) v
    , mkOption ? k: v:
        if v == null then [ ]
        else if optionValueSeparator == null then [ (mkOptionName k) (mkValueStringDefault { } v) ]
        else [ "${mkOptionName k}${optionValueSeparator}${mkValueStringDefault { } v}" ]
    , optionValueSeparator ? null
    }:
    options:
    let
      render = k: v: if isBool v then mkBool k v else if isList v then mkList k v else mkOption k v;
    in
    concatLists (mapAttrsToList render options);
  # toGNUCommandLine quoted for the shell, as one string.
  toGNUCommandLineShell = options: attrs: escapeShellArgs (toGNUCommandLine options attrs);
  cli = { inherit toGNUCommandLine toGNUCommandLineShell; };

  # ---------------------------------------------------------------- versions

  versions = {
    # The first component of a version string.
    major = v: elemAt (builtins.splitVersion v) 0;
    # The second component of a version string.
    minor = v: elemAt (builtins.splitVersion v) 1;
    # The third component of a version string.
    patch = v: elemAt (builtins.splitVersion v) 2;
    # "MAJOR.MINOR" of a version string.
    majorMinor = v: concatStringsSep "." (take 2 (builtins.splitVersion v));
    # The first `n` components of a version string, joined by ".".
    pad = n: version:
      let
        numericVersion = head (splitString "-" version);
        versionSuffix = removePrefix numericVersion version;
      in
      concatStringsSep "." (take n (builtins.splitVersion numericVersion ++ replicate n "0"))
      + versionSuffix;
    inherit (builtins) splitVersion;
  };

  # ---------------------------------------------------------------- generators

  # A value as an INI / key=value string: ints, strings, bools, null and floats; aborts otherwise.
  mkValueStringDefault = { }: v:
    let err = t: abort "generators.mkValueStringDefault: ${t} not supported: ${toPretty { } v}";
    in if isInt v then toString v
    else if isDerivation v then toString v
    else if isString v then v
    else if true == v then "true"
    else if false == v then "false"
    else if null == v then "null"
    else if isList v then err "lists"
    else if isAttrs v then err "attrsets"
    else if isFunction v then err "functions"
    else if isFloat v then floatToString v
    else err "this value is";
  # "KEY<sep>VALUE" with `sep` escaped in the key.
  mkKeyValueDefault = { mkValueString ? mkValueStringDefault { } }: sep: k: v:
    "${escape [ sep ] k}${sep}${mkValueString v}";
  # One "key=value" line per attribute (a list becomes repeated keys if asked).
  toKeyValue = { mkKeyValue ? mkKeyValueDefault { } "=", listsAsDuplicateKeys ? false, indent ? "" }:
    let
      mkLine = k: v: indent + mkKeyValue k v + "\n";
      mkLines =
        if listsAsDuplicateKeys
        then k: v: map (mkLine k) (if isList v then v else [ v ])
        else k: v: [ (mkLine k v) ];
    in
    attrs: concatStrings (concatLists (mapAttrsToList mkLines attrs));
  # An INI file: one "[section]" per attribute, its set as key=value lines; sections joined by "\n".
  toINI = { mkSectionName ? (name: escape [ "[" "]" ] name), mkKeyValue ? mkKeyValueDefault { } "=", listsAsDuplicateKeys ? false }: attrsOfAttrs:
    let
      mkSection = sectName: sectValues:
        "[${mkSectionName sectName}]\n" + toKeyValue { inherit mkKeyValue listsAsDuplicateKeys; } sectValues;
    in
    concatStringsSep "\n" (mapAttrsToList mkSection attrsOfAttrs);
  # An INI file with key=value lines before the sections.
  toINIWithGlobalSection = { mkSectionName ? (name: escape [ "[" "]" ] name), mkKeyValue ? mkKeyValueDefault { } "=", listsAsDuplicateKeys ? false }: { globalSection, sections ? { } }:
    (if globalSection == { } then "" else toKeyValue { inherit mkKeyValue listsAsDuplicateKeys; } globalSection + "\n")
    + toINI { inherit mkSectionName mkKeyValue listsAsDuplicateKeys; } sections;
  # A Nix-like rendering of a value for messages: one line, or indented lines when `multiline`.
  toPretty = { allowPrettyValues ? false, multiline ? true, indent ? "" }:
    let
      # What opens and closes a list, set or multi-line string at depth `ind`.
      opening = ind: if multiline then "\n${ind}  " else " ";
      closing = ind: if multiline then "\n${ind}" else " ";
      showString = ind: v:
        let
          lines = filter (l: !isList l) (split "\n" v);
          quoted = "\"" + concatStringsSep "\\n" (map (escape [ "\\" "\"" "\${" ]) lines) + "\"";
          indented = map (replaceStrings [ "\${" "''" ] [ "''\${" "'''" ]) lines;
          final = last indented;
          block = "''" + opening ind + concatStringsSep (opening ind) (init indented)
            + (if final == "" then closing ind else opening ind + final) + "''";
        in
        if multiline && length lines > 1 then block else quoted;
      showFunction = v:
        let args = functionArgs v;
        in if args == { } then "<function>"
          else "<function, args: {${concatStringsSep ", " (mapAttrsToList (n: hasDefault: n + optionalString hasDefault "?") args)}}>";
      showAttrs = ind: v:
        if allowPrettyValues && v ? __pretty && v ? val then v.__pretty v.val
        else if v == { } then "{ }"
        else if isDerivation v then "<derivation ${v.name or "???"}>"
        else "{" + opening ind
          + concatStringsSep (opening ind) (mapAttrsToList (n: x: "${escapeNixIdentifier n} = ${show (ind + "  ") x};") v)
          + closing ind + "}";
      show = ind: v:
        if isInt v then toString v
        else if isFloat v then toJSON v
        else if isString v then showString ind v
        else if isBool v then boolToString v
        else if v == null then "null"
        else if isPath v then toString v
        else if isList v then
          (if v == [ ] then "[ ]" else "[" + opening ind + concatMapStringsSep (opening ind) (show (ind + "  ")) v + closing ind + "]")
        else if isFunction v then showFunction v
        else if isAttrs v then showAttrs ind v
        else abort "generators.toPretty: unexpected value";
    in
    show indent;
  generators = {
    inherit mkValueStringDefault mkKeyValueDefault toKeyValue toINI toINIWithGlobalSection toPretty;
    # JSON of a value.
    toJSON = { }: toJSON;
    # YAML of a value (JSON is YAML).
    toYAML = { }: toJSON;
  };

  # ---------------------------------------------------------------- modules

  # Definition `content` that counts only when `condition` is true.
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  # A list of definitions that count as one.
  mkMerge = contents: { _type = "merge"; inherit contents; };
  # A definition with an override priority (lower wins).
  mkOverride = priority: content: { _type = "override"; inherit priority content; };
  # The priority of a plain definition.
  defaultOverridePriority = 100;
  # Priority 1500: the option's own default.
  mkOptionDefault = mkOverride 1500;
  # Priority 1000: a default a configuration may override.
  mkDefault = mkOverride 1000;
  # Priority 60: what image builders set.
  mkImageMediaOverride = mkOverride 60;
  # Priority 50: overrides plain definitions.
  mkForce = mkOverride 50;
  # Priority 10: what VM builds set.
  mkVMOverride = mkOverride 10;
  # A definition with an order priority for list/string merging (lower comes first).
  mkOrder = priority: content: { _type = "order"; inherit priority content; };
  # The order of a plain definition.
  defaultOrderPriority = 1000;
  # Order 500: before plain definitions.
  mkBefore = mkOrder 500;
  # Order 1500: after plain definitions.
  mkAfter = mkOrder 1500;
  # A definition carrying the file it comes from: `{ file; value; }` marked `_type = "definition"`.
  mkDefinition = args@{ file, value, ... }: args // { _type = "definition"; };
  # A module that gives `m` the file name `file` in messages.
  setDefaultModuleLocation = file: m: { _file = file; imports = [ m ]; };
  # `f` of an option's value, at that option's priority (an evaluated option: `value`, `highestPrio`).
  mkDerivedConfig = opt: f: mkOverride (opt.highestPrio or defaultOverridePriority) (f opt.value);
  # The value unchanged (a no-op kept from older nixpkgs).
  mkFixStrictness = id;
  # Definitions of `option` (an evaluated option: `isDefined`, `definitions`) wrapped by `wrap`.
  mkAliasAndWrapDefinitions = wrap: option:
    mkIf (isOption option && option.isDefined) (wrap (mkMerge option.definitions));
  # The definitions of another option (read from the module's `options` argument).
  mkAliasDefinitions = mkAliasAndWrapDefinitions id;

  # An option path as users write it: "a.b.\"c d\"".
  showOption = parts:
    let
      escapeOptionPart = part:
        if part == "*" || match "<(.*)>" part != null then part else escapeNixIdentifier part;
    in
    concatStringsSep "." (map escapeOptionPart parts);
  # Whether option `path` has definitions. Read from the module's `options` argument (its
  # `isDefined`) when the module system passes one; otherwise `fallback` decides.
  optionDefinedAt = options: path: fallback:
    let o = attrByPath path null options;
    in if o != null && o ? isDefined then o.isDefined else fallback;

  # A module making option `from` an alias of option `to`: definitions of `from` go to `to`.
  # Simplifications against nixpkgs: `from` has the type of `to` when `options` shows it
  # (else `anything`); its definitions reach `to` merged, so their priorities are not carried
  # over one by one; reading `config.<from>` gives the definitions of `from`, not `to`'s value.
  # Without `options.<from>.isDefined`, `from` counts as defined when reading it succeeds
  # (an undefined option must then be a catchable error).
  doRename = { from, to, visible, warn }:
    { config, options ? { }, ... }:
    let
      toType = (attrByPath to { } options).type or types.anything;
      fromValue = attrByPath from (throw "The option `${showOption from}' is not defined.") config;
      defined = optionDefinedAt options from (builtins.tryEval (builtins.seq fromValue true)).success;
    in
    {
      options = setAttrByPath from (mkOption {
        inherit visible;
        type = toType;
        description = "Alias of {option}`${showOption to}`.";
      });
      config = mkMerge [
        (optionalAttrs (options ? warnings) {
          warnings = optional (warn && defined)
            "The option `${showOption from}' has been renamed to `${showOption to}'.";
        })
        (setAttrByPath to (mkIf defined fromValue))
      ];
    };
  # A module making option `from` a visible alias of `to`, without warning.
  mkAliasOptionModule = from: to: doRename { inherit from to; visible = true; warn = false; };
  # A module making option `from` a hidden, warned alias of `to`.
  mkRenamedOptionModule = from: to: doRename { inherit from to; visible = false; warn = true; };
  # mkRenamedOptionModule taking `{ sinceRelease; from; to; }` (the release only decides the warning in nixpkgs).
  mkRenamedOptionModuleWith = { sinceRelease, from, to }:
    doRename { inherit from to; visible = false; warn = trivial.isInOldestRelease sinceRelease; };
  # A module declaring `optionName` removed: reading it throws, defining it fails an assertion
  # with the instructions (the assertion needs `options.<name>.isDefined`; without it, it holds).
  mkRemovedOptionModule = optionName: replacementInstructions:
    { options ? { }, ... }:
    {
      options = setAttrByPath optionName (mkOption {
        visible = false;
        apply = x: throw "The option `${showOption optionName}' can no longer be used since it's been removed. ${replacementInstructions}";
      });
      config.assertions = [{
        assertion = !(optionDefinedAt options optionName false);
        message = "The option definition `${showOption optionName}' no longer has any effect; please remove it.\n${replacementInstructions}";
      }];
    };

  # `content` if the assertion holds; otherwise evaluating it throws "Failed assertion: MESSAGE".
  mkAssert = assertion: message: content:
    mkIf (if assertion then true else throw "\nFailed assertion: ${message}") content;
  # A module turning the options `from` (a list of paths) into option `to`, which `mergeFn config`
  # defines whenever one of them is set. Each old option defaults to a marker string, so this
  # needs nothing from the module system beyond defaults.
  mkMergedOptionModule = from: to: mergeFn:
    { config, options ? { }, ... }:
    let
      marker = "_mkMergedOptionModule";
      isSet = f: attrByPath f marker config != marker;
    in
    {
      options = foldl' recursiveUpdate { } (map (path: setAttrByPath path (mkOption {
        visible = false;
        default = marker;
      })) from);
      config = mkMerge [
        (optionalAttrs (options ? warnings) {
          warnings = map (f: "The option `${showOption f}' has been changed to `${showOption to}' that has a different type. Please read `${showOption to}' documentation and update your configuration accordingly.")
            (filter isSet from);
        })
        (setAttrByPath to (mkMerge (optional (any isSet from) (mergeFn config))))
      ];
    };
  # mkMergedOptionModule for a single option `from`, converted by `changeFn config`.
  mkChangedOptionModule = from: to: changeFn: mkMergedOptionModule [ from ] to changeFn;

  modules = {
    inherit mkIf mkMerge mkOverride defaultOverridePriority mkOptionDefault mkDefault
      mkImageMediaOverride mkForce mkVMOverride mkOrder defaultOrderPriority mkBefore mkAfter
      mkFixStrictness mkAliasAndWrapDefinitions mkAliasDefinitions doRename mkDefinition
      setDefaultModuleLocation mkDerivedConfig mkAssert mkMergedOptionModule mkChangedOptionModule
      mkAliasOptionModule mkRenamedOptionModule mkRemovedOptionModule mkRenamedOptionModuleWith;
    # Deprecated alias of defaultOverridePriority.
    defaultPriority = defaultOverridePriority;
    # Deprecated alias of mkAliasOptionModule.
    mkAliasOptionModuleMD = mkAliasOptionModule;
  };

  # ---------------------------------------------------------------- options

  # An option declaration; unknown fields are an error, as in nixpkgs.
  mkOption =
    { default ? null, defaultText ? null, example ? null, description ? null
    , relatedPackages ? null, type ? null, apply ? null, internal ? null, visible ? null
    , readOnly ? null
    }@attrs:
    attrs // { _type = "option"; };
  # A boolean option, false by default: "Whether to enable NAME.".
  mkEnableOption = name: mkOption {
    default = false;
    example = true;
    description = "Whether to enable ${name}.";
    type = types.bool;
  };
  # A package option defaulting to `pkgs.<default>` (an attribute path; `name` by default).
  mkPackageOption = pkgs: name:
    { nullable ? false, default ? name, example ? null, extraDescription ? "", pkgsText ? "pkgs" }:
    let
      name' = if isList name then last name else name;
      default' = if isList default then default else [ default ];
      defaultText = showAttrPath default';
      defaultValue = attrByPath default' (throw "${defaultText} cannot be found in ${pkgsText}") pkgs;
      defaults =
        if default != null then {
          default = defaultValue;
          defaultText = literalExpression ("${pkgsText}." + defaultText);
        } else optionalAttrs nullable { default = null; };
    in
    mkOption (defaults // {
      description = "The ${name'} package to use." + (if extraDescription == "" then "" else " ") + extraDescription;
      type = (if nullable then types.nullOr else id) types.package;
    } // optionalAttrs (example != null) {
      example = literalExpression (if isList example then "${pkgsText}.${showAttrPath example}" else example);
    });
  # An option of any type that swallows whatever is defined for it.
  mkSinkUndeclaredOptions = attrs: mkOption ({
    internal = true;
    visible = false;
    default = false;
    description = "Sink for option definitions.";
    type = mkOptionType { name = "sink"; check = x: true; };
    apply = x: throw "Option value is not readable because the option is not declared.";
  } // attrs);
  # Whether a value is an option declaration.
  isOption = isType "option";
  # Documentation: a Nix expression shown as is.
  literalExpression = text:
    if !isString text then throw "literalExpression expects a string."
    else { _type = "literalExpression"; inherit text; };
  # Documentation: code in a language, as a Markdown code block.
  literalCode = languageTag: text: literalMD "```${languageTag}\n${text}\n```\n";
  # Documentation: Markdown shown as is.
  literalMD = text:
    if !isString text then throw "literalMD expects a string."
    else { _type = "literalMD"; inherit text; };
  # Markdown documentation (a no-op nowadays).
  mdDoc = s: s;
  # The values of a list of definitions.
  getValues = map (x: x.value);
  # The files of a list of definitions.
  getFiles = map (x: x.file);
  # Merges definitions that must all be equal.
  mergeEqualOption = loc: defs:
    if defs == [ ] then abort "This case should never happen."
    else if length defs == 1 then (head defs).value
    else (foldl' (first: def:
      if def.value != first.value
      then throw "The option `${showOption loc}' has conflicting definition values${showFilesIn defs}."
      else first) (head defs) (tail defs)).value;
  # The files a list of definitions come from, as an error message shows them.
  showFiles = files: concatStringsSep " and " (map (f: "`${toString f}'") files);
  # " in FILES" for the definitions that name a file, "" when none does.
  showFilesIn = defs:
    let files = map (d: d.file) (filter (d: d ? file) defs);
    in optionalString (files != [ ]) " in ${showFiles files}";
  # The single definition's value; more than one is an error explaining `message`.
  mergeUniqueOption = { message, merge ? loc: defs: (head defs).value }: loc: defs:
    if length defs == 1 then merge loc defs
    else
      assert length defs > 1;
      throw "The option `${showOption loc}' is defined multiple times while it's expected to be unique${showFilesIn defs}.\n${message}";
  # The single definition's value; more than one is an error.
  mergeOneOption = mergeUniqueOption { message = ""; };
  # nixpkgs' default merge: lists concatenated, sets united, bools or-ed, strings joined, else one value.
  mergeDefaultOption = loc: defs:
    let list = getValues defs; in
    if length list == 1 then head list
    else if all isFunction list then x: mergeDefaultOption loc (map (f: f x) list)
    else if all isList list then concatLists list
    else if all isAttrs list then foldl' mergeAttrs { } list
    else if all isBool list then foldl' or' false list
    else if all isString list then concatStrings list
    else if all isInt list && all (x: x == head list) list then head list
    else throw "Cannot merge definitions of `${showOption loc}'. Definition values:${showFilesIn defs}";

  # The file name of definitions whose module is unknown.
  unknownModule = "<unknown-file>";
  # "OPTION, with values defined in:" and the definition files, one per line.
  showOptionWithDefLocs = opt: "${showOption opt.loc}, with values defined in:\n${concatMapStringsSep "\n" (defFile: "  - ${defFile}") opt.files}\n";
  # An option value made printable: derivations become a stub naming them, `_args` dropped.
  scrubOptionValue = x:
    if isDerivation x then { type = "derivation"; drvPath = x.name; outPath = x.name; name = x.name; }
    else if isList x then map scrubOptionValue x
    else if isAttrs x then builtins.mapAttrs (n: v: scrubOptionValue v) (removeAttrs x [ "_args" ])
    else x;

  options = {
    inherit mkOption mkEnableOption mkPackageOption mkSinkUndeclaredOptions isOption
      literalExpression literalMD literalCode mdDoc showOption getValues getFiles mergeEqualOption showFiles
      mergeUniqueOption mergeOneOption mergeDefaultOption unknownModule showOptionWithDefLocs
      scrubOptionValue;
    # Deprecated alias of literalExpression.
    literalExample = literalExpression;
    # Deprecated alias of mkPackageOption.
    mkPackageOptionMD = mkPackageOption;
  };

  # ---------------------------------------------------------------- types

  # "(DESCRIPTION)" unless `unparenthesize` accepts the type's description class.
  optionDescriptionPhrase = unparenthesize: t:
    if unparenthesize (t.descriptionClass or null) then t.description else "(${t.description})";

  # An option type: `check` tests a value; extra attributes are kept for ncsh's module system.
  mkOptionType = { name, description ? null, descriptionClass ? null, check ? (x: true), ... }@attrs:
    attrs // {
      _type = "option-type";
      inherit name descriptionClass check;
      description = if description == null then name else description;
    };
  # A type that also requires `check`.
  addCheck = elemType: check: elemType // { check = x: elemType.check x && check x; };
  # Whether a value is an option type.
  isOptionType = isType "option-type";

  # A string type joined by `sep` when defined several times.
  separatedString = sep: mkOptionType {
    name = "separatedString";
    description = if sep == "" then "Concatenated string" else "strings concatenated with ${toJSON sep}";
    descriptionClass = "noun";
    check = isString;
    separator = sep;
  };

  # Description of a closed integer range.
  intBetweenDesc = lowest: highest: "${toString lowest} and ${toString highest} (both inclusive)";
  # Integers in [lowest, highest].
  intBetween = lowest: highest:
    assert assertMsg (lowest <= highest) "ints.between: lowest must be smaller than highest";
    addCheck types.int (x: x >= lowest && x <= highest) // {
      name = "intBetween";
      description = "integer between ${intBetweenDesc lowest highest}";
      inherit lowest highest;
    };
  # A named integer range ("N bit (un)signed integer; between …").
  intRange = lowest: highest: name: docStart:
    intBetween lowest highest // {
      inherit name;
      description = docStart + "; between ${intBetweenDesc lowest highest}";
    };
  # Description of a closed number range.
  numberBetweenDesc = lowest: highest: "${toJSON lowest} and ${toJSON highest} (both inclusive)";

  # A path type, optionally required to be absolute and/or in (or not in) the store.
  pathWith = { inStore ? null, absolute ? null }:
    throwIf (inStore != null && absolute != null && inStore && !absolute)
      "In pathWith, inStore means the path must be absolute"
      (mkOptionType {
        name = "path";
        description =
          (if absolute == null then "" else (if absolute then "absolute " else "relative "))
          + "path"
          + (if inStore == null then "" else (if inStore then " in the Nix store" else " not in the Nix store"));
        descriptionClass = "noun";
        check = x:
          let
            str = toString x;
            isAbsolute = substring 0 1 str == "/";
            # As nixpkgs, a relative string is taken from the root for the store test.
            rooted = if isAbsolute then str else "/" + str;
            isInStore = hasPrefix "/nix/store/" rooted && stringLength rooted > 11;
            # Outside the store only strings: a path value would be copied into it later.
            isExpectedType = if inStore == null || inStore then isStringLike x else isString x;
          in
          isExpectedType
          && (inStore == null || inStore == isInStore)
          && (absolute == null || absolute == isAbsolute);
        inherit inStore absolute;
      });

  # A type for a set of modules (a submodule), with the module system's arguments.
  submoduleWith = { modules, specialArgs ? { }, shorthandOnlyDefinesConfig ? false, description ? null, class ? null }:
    mkOptionType {
      name = "submodule";
      description = if description != null then description else "submodule";
      check = x: isAttrs x || isFunction x || types.path.check x;
      inherit modules specialArgs shorthandOnlyDefinesConfig class;
    };

  types = {
    inherit mkOptionType addCheck isOptionType optionDescriptionPhrase separatedString pathWith
      submoduleWith isType setType;

    # Any value; definitions are merged as nixpkgs' `anything` does.
    anything = mkOptionType { name = "anything"; description = "anything"; descriptionClass = "noun"; };
    # Any value (the type of options without one).
    unspecified = mkOptionType { name = "unspecified"; description = "unspecified value"; descriptionClass = "noun"; };
    # Any value, never merged.
    raw = mkOptionType { name = "raw"; description = "raw value"; descriptionClass = "noun"; };
    # true or false.
    bool = mkOptionType { name = "bool"; description = "boolean"; descriptionClass = "noun"; check = isBool; };
    # true or false, several definitions merged with "or".
    boolByOr = mkOptionType { name = "boolByOr"; description = "boolean (merged using or)"; descriptionClass = "noun"; check = isBool; };
    # An integer.
    int = mkOptionType { name = "int"; description = "signed integer"; descriptionClass = "noun"; check = isInt; };
    ints = {
      # Integers in [lowest, highest].
      between = intBetween;
      # Integers >= 0.
      unsigned = addCheck types.int (x: x >= 0) // {
        name = "unsignedInt";
        description = "unsigned integer, meaning >=0";
        descriptionClass = "nonRestrictiveClause";
      };
      # Integers > 0.
      positive = addCheck types.int (x: x > 0) // {
        name = "positiveInt";
        description = "positive integer, meaning >0";
        descriptionClass = "nonRestrictiveClause";
      };
      # 0 … 255.
      u8 = intRange 0 255 "unsignedInt8" "8 bit unsigned integer";
      # 0 … 65535.
      u16 = intRange 0 65535 "unsignedInt16" "16 bit unsigned integer";
      # 0 … 4294967295.
      u32 = intRange 0 4294967295 "unsignedInt32" "32 bit unsigned integer";
      # -128 … 127.
      s8 = intRange (-128) 127 "signedInt8" "8 bit signed integer";
      # -32768 … 32767.
      s16 = intRange (-32768) 32767 "signedInt16" "16 bit signed integer";
      # -2147483648 … 2147483647.
      s32 = intRange (-2147483648) 2147483647 "signedInt32" "32 bit signed integer";
    };
    # A TCP/UDP port: 0 … 65535.
    port = types.ints.u16;
    # A float.
    float = mkOptionType { name = "float"; description = "floating point number"; descriptionClass = "noun"; check = isFloat; };
    # An integer or a float.
    number = types.either types.int types.float;
    numbers = {
      # Numbers in [lowest, highest].
      between = lowest: highest:
        assert assertMsg (lowest <= highest) "numbers.between: lowest must be smaller than highest";
        addCheck types.number (x: x >= lowest && x <= highest) // {
          name = "numberBetween";
          description = "integer or floating point number between ${numberBetweenDesc lowest highest}";
          inherit lowest highest;
        };
      # Numbers >= 0.
      nonnegative = addCheck types.number (x: x >= 0) // {
        name = "numberNonnegative";
        description = "nonnegative integer or floating point number, meaning >=0";
        descriptionClass = "nonRestrictiveClause";
      };
      # Numbers > 0.
      positive = addCheck types.number (x: x > 0) // {
        name = "numberPositive";
        description = "positive integer or floating point number, meaning >0";
        descriptionClass = "nonRestrictiveClause";
      };
    };
    # A string (several definitions must be equal).
    str = mkOptionType { name = "str"; description = "string"; descriptionClass = "noun"; check = isString; };
    # A string with a non-whitespace character.
    nonEmptyStr = mkOptionType {
      name = "nonEmptyStr";
      description = "non-empty string";
      descriptionClass = "noun";
      check = x: isString x && match "[ \t\n]*" x == null;
    };
    # A string without newlines (one trailing newline allowed).
    singleLineStr = mkOptionType {
      name = "singleLineStr";
      description = "(optionally newline-terminated) single-line string";
      descriptionClass = "noun";
      check = x: isString x && match "[^\n\r]*\n?" x != null;
    };
    # A string the regular expression matches entirely.
    strMatching = pattern: mkOptionType {
      name = "strMatching ${escapeNixString pattern}";
      description = "string matching the pattern ${pattern}";
      descriptionClass = "noun";
      check = x: isString x && match pattern x != null;
      inherit pattern;
    };
    # Strings joined by newlines.
    lines = separatedString "\n" // { name = "lines"; };
    # Deprecated: strings concatenated without separator (warns, as in nixpkgs).
    string = warn "The type `types.string` is deprecated. See https://github.com/NixOS/nixpkgs/pull/66346 for better alternative types."
      (separatedString "" // { name = "string"; });
    # Deprecated alias of attrsOf.
    loaOf = elemType: types.attrsOf elemType // {
      name = "loaOf";
      deprecationMessage = "Mixing lists with attribute values is no longer possible; please use `types.attrsOf` instead. See https://github.com/NixOS/nixpkgs/issues/1800 for the motivation.";
    };
    # Strings joined by commas.
    commas = separatedString ",";
    # Strings joined by colons (like PATH).
    envVar = separatedString ":";
    # A string without ":" or newlines (for /etc/passwd fields).
    passwdEntry = entryType: addCheck entryType (str: !(hasInfix ":" str || hasInfix "\n" str)) // {
      name = "passwdEntry ${entryType.name}";
      description = "${optionDescriptionPhrase (class: class == "noun") entryType}, not containing newlines or colons";
      descriptionClass = "nonRestrictiveClause";
    };
    # An attribute set (merged shallowly).
    attrs = mkOptionType { name = "attrs"; description = "attribute set"; check = isAttrs; };
    # A package: a derivation, or a string or path naming one. (nixpkgs accepts only store
    # paths among strings; ncsh's builder also takes host paths, so any string or path passes.)
    package = mkOptionType {
      name = "package";
      description = "package";
      descriptionClass = "noun";
      check = x: isDerivation x || isString x || isPath x;
    };
    # A package with a `shellPath`.
    shellPackage = types.package // { check = x: isDerivation x && builtins.hasAttr "shellPath" x; };
    # An absolute path (a path value or a string starting with "/").
    path = pathWith { absolute = true; };
    # A path in the Nix store.
    pathInStore = pathWith { inStore = true; };
    # An absolute path outside the Nix store, given as a string (for secrets and the like).
    externalPath = pathWith { absolute = true; inStore = false; };
    # A value made by nixpkgs' `mkLuaInline`.
    luaInline = mkOptionType {
      name = "luaInline";
      description = "inline lua";
      descriptionClass = "noun";
      check = x: x._type or null == "lua-inline";
    };
    # A set with exactly one attribute, named after one of the tags (each tag an option).
    attrTag = tags: mkOptionType {
      name = "attrTag";
      description = "attribute-tagged union with choices: ${concatMapStringsSep ", " escapeNixIdentifier (attrNames tags)}";
      descriptionClass = "noun";
      check = v: isAttrs v && length (attrNames v) == 1 && tags ? ${head (attrNames v)};
      inherit tags;
    };
    # A list whose elements are of `elemType` (check tests the list only, like nixpkgs).
    listOf = elemType: mkOptionType {
      name = "listOf";
      description = "list of ${optionDescriptionPhrase (class: class == "noun" || class == "composite") elemType}";
      descriptionClass = "composite";
      check = isList;
      inherit elemType;
      nestedTypes.elemType = elemType;
    };
    # A list of `elemType` with at least one element.
    nonEmptyListOf = elemType:
      let list = addCheck (types.listOf elemType) (l: l != [ ]);
      in list // { description = "non-empty ${optionDescriptionPhrase (class: class == "noun") list}"; };
    # An attribute set whose values are of `elemType`.
    attrsOf = elemType: mkOptionType {
      name = "attrsOf";
      description = "attribute set of ${optionDescriptionPhrase (class: class == "noun" || class == "composite") elemType}";
      descriptionClass = "composite";
      check = isAttrs;
      inherit elemType;
      nestedTypes.elemType = elemType;
    };
    # attrsOf whose values are evaluated only when used.
    lazyAttrsOf = elemType: mkOptionType {
      name = "lazyAttrsOf";
      description = "lazy attribute set of ${optionDescriptionPhrase (class: class == "noun" || class == "composite") elemType}";
      descriptionClass = "composite";
      check = isAttrs;
      inherit elemType;
      nestedTypes.elemType = elemType;
    };
    # attrsOf or lazyAttrsOf chosen by `lazy`.
    attrsWith = { elemType, lazy ? false, placeholder ? "name" }:
      (if lazy then types.lazyAttrsOf else types.attrsOf) elemType // { inherit placeholder; };
    # A type whose value may not be defined twice.
    uniq = types.unique { message = ""; };
    # A type whose value may not be defined twice; `message` explains why.
    unique = { message }: type: mkOptionType {
      name = "unique";
      inherit (type) description check;
      descriptionClass = type.descriptionClass or null;
      elemType = type;
      nestedTypes.elemType = type;
      inherit message;
    };
    # null or a value of `elemType`.
    nullOr = elemType: mkOptionType {
      name = "nullOr";
      description = "null or ${optionDescriptionPhrase (class: class == "noun" || class == "conjunction") elemType}";
      descriptionClass = "conjunction";
      check = x: x == null || elemType.check x;
      inherit elemType;
      nestedTypes.elemType = elemType;
    };
    # A function whose result is of `elemType`.
    functionTo = elemType: mkOptionType {
      name = "functionTo";
      description = "function that evaluates to a(n) ${optionDescriptionPhrase (class: class == "noun" || class == "composite") elemType}";
      descriptionClass = "composite";
      check = isFunction;
      inherit elemType;
      nestedTypes.elemType = elemType;
    };
    # One of the listed values.
    enum = values:
      let
        show = v:
          if isString v then ''"${v}"''
          else if isInt v then toString v
          else if isBool v then boolToString v
          else "<${typeOf v}>";
      in
      mkOptionType {
        name = "enum";
        description =
          if values == [ ] then "impossible (empty enum)"
          else if length values == 1 then "value ${show (head values)} (singular enum)"
          else "one of ${concatMapStringsSep ", " show values}";
        descriptionClass = if length values < 2 then "noun" else "conjunction";
        check = flip elem values;
        inherit values;
      };
    # A value of `t1` or of `t2`.
    either = t1: t2: mkOptionType {
      name = "either";
      description =
        if t1.descriptionClass or null == "nonRestrictiveClause"
        then "${t1.description}, or ${optionDescriptionPhrase (class: class == "noun" || class == "conjunction") t2}"
        else "${optionDescriptionPhrase (class: class == "noun" || class == "conjunction") t1} or ${optionDescriptionPhrase (class: class == "noun" || class == "conjunction" || class == "composite") t2}";
      descriptionClass = "conjunction";
      check = x: t1.check x || t2.check x;
      left = t1;
      right = t2;
      nestedTypes = { left = t1; right = t2; };
    };
    # A value of any of the types (a chain of `either`).
    oneOf = ts:
      if ts == [ ] then throw "types.oneOf needs to get at least one type in its argument"
      else foldl' types.either (head ts) (tail ts);
    # A value of `finalType`, or of `coercedType` turned into one by `coerceFunc`.
    coercedTo = coercedType: coerceFunc: finalType: mkOptionType {
      name = "coercedTo";
      description = "${optionDescriptionPhrase (class: class == "noun") finalType} or ${optionDescriptionPhrase (class: class == "noun") coercedType} convertible to it";
      descriptionClass = null;
      check = x: (coercedType.check x && finalType.check (coerceFunc x)) || finalType.check x;
      inherit coercedType coerceFunc finalType;
    };
    # A submodule: a module (or list of modules) whose `config` is the value.
    submodule = modules: submoduleWith { shorthandOnlyDefinesConfig = true; modules = toList modules; };
    # A module, evaluated later by whoever uses it.
    deferredModule = mkOptionType {
      name = "deferredModule";
      description = "module";
      descriptionClass = "noun";
      check = x: isAttrs x || isFunction x || types.path.check x;
      staticModules = [ ];
    };
    # A Nixpkgs package set (an attribute set with `_type = "pkgs"`), never merged.
    pkgs = mkOptionType {
      name = "pkgs";
      description = "Nixpkgs package set";
      descriptionClass = "noun";
      check = x: isAttrs x && (x._type or "") == "pkgs";
    };
    # An option type.
    optionType = mkOptionType { name = "optionType"; description = "optionType"; descriptionClass = "noun"; check = isOptionType; };
  };

  fixedPoints = {
    inherit fix fix' converge extends composeExtensions composeManyExtensions makeExtensible
      makeExtensibleWithCustomName toExtension;
  };

  # ---------------------------------------------------------------- debug

  # Traces `msg` when `pred` holds, then returns `x`.
  traceIf = pred: msg: x: if pred then builtins.trace msg x else x;
  # Traces the value itself and returns it.
  traceVal = x: builtins.trace x x;
  # Traces `f x` and returns `x`.
  traceValFn = f: x: builtins.trace (f x) x;
  # Traces `x` fully evaluated, then returns `y`.
  traceSeq = x: y: builtins.trace (builtins.deepSeq x x) y;
  # Traces the value fully evaluated and returns it.
  traceValSeq = x: traceSeq x x;
  # Traces `f x` fully evaluated and returns `x`.
  traceValSeqFn = f: x: traceValFn f (builtins.deepSeq x x);
  debug = { inherit traceIf traceVal traceValFn traceSeq traceValSeq traceValSeqFn; };

  # ---------------------------------------------------------------- stringsWithDeps

  # The texts of `arg` (entries, or names looked up in `predefined`), each after its `deps`,
  # every named entry once.
  textClosureList = predefined: arg:
    let
      go = done: todo:
        if todo == [ ] then { result = [ ]; inherit done; }
        else
          let entry = head todo; in
          if isAttrs entry then
            let
              before = go done entry.deps;
              after = go before.done (tail todo);
            in
            { result = before.result ++ [ entry.text ] ++ after.result; done = after.done; }
          else if done ? ${entry} then go done (tail todo)
          else go (done // { ${entry} = 1; }) ([ predefined.${entry} ] ++ tail todo);
    in
    (go { } arg).result;
  # textClosureList of the names, each text mapped by `f`, joined by newlines.
  textClosureMap = f: predefined: names: concatStringsSep "\n" (map f (textClosureList predefined names));
  # An entry without dependencies.
  noDepEntry = text: { inherit text; deps = [ ]; };
  # An entry with dependencies.
  fullDepEntry = text: deps: { inherit text deps; };
  # An entry that only pulls in its dependencies.
  packEntry = deps: { inherit deps; text = ""; };
  # An entry (for activation scripts) run after `deps`.
  stringAfter = deps: text: { inherit text deps; };
  stringsWithDeps = { inherit textClosureList textClosureMap noDepEntry fullDepEntry packEntry stringAfter; };

  # ---------------------------------------------------------------- kernel

  # Kernel configuration values as nixpkgs' structured kernel config writes them.
  kernel = {
    yes = { tristate = "y"; optional = false; };
    no = { tristate = "n"; optional = false; };
    module = { tristate = "m"; optional = false; };
    unset = { tristate = null; optional = false; };
    freeform = x: { freeform = x; optional = false; };
    option = x: x // { optional = true; };
  };

  # ---------------------------------------------------------------- misc

  # System doubles by platform, as lists of strings.
  platforms = rec {
    linux = [
      "aarch64-linux" "armv5tel-linux" "armv6l-linux" "armv7a-linux" "armv7l-linux"
      "i686-linux" "loongarch64-linux" "m68k-linux" "microblaze-linux" "microblazeel-linux"
      "mips-linux" "mips64-linux" "mips64el-linux" "mipsel-linux" "powerpc64-linux"
      "powerpc64le-linux" "riscv32-linux" "riscv64-linux" "s390-linux" "s390x-linux"
      "x86_64-linux"
    ];
    darwin = [ "x86_64-darwin" "aarch64-darwin" ];
    freebsd = [ "i686-freebsd" "x86_64-freebsd" "aarch64-freebsd" ];
    unix = linux ++ darwin ++ freebsd;
    all = unix;
    x86_64 = [ "x86_64-linux" "x86_64-darwin" "x86_64-freebsd" ];
    aarch64 = [ "aarch64-linux" "aarch64-darwin" "aarch64-freebsd" ];
    i686 = [ "i686-linux" "i686-freebsd" ];
    x86 = i686 ++ x86_64;
  };

  # A license entry as nixpkgs writes them.
  mkLicense = shortName: spdxId: fullName: free: {
    inherit shortName spdxId fullName free;
    deprecated = false;
    redistributable = free;
  };
  # A few common licenses, in nixpkgs' shape.
  licenses = {
    mit = mkLicense "mit" "MIT" "MIT License" true;
    asl20 = mkLicense "asl20" "Apache-2.0" "Apache License 2.0" true;
    bsd2 = mkLicense "bsd2" "BSD-2-Clause" "BSD 2-clause \"Simplified\" License" true;
    bsd3 = mkLicense "bsd3" "BSD-3-Clause" "BSD 3-clause \"New\" or \"Revised\" License" true;
    gpl2Only = mkLicense "gpl2Only" "GPL-2.0-only" "GNU General Public License v2.0 only" true;
    gpl2Plus = mkLicense "gpl2Plus" "GPL-2.0-or-later" "GNU General Public License v2.0 or later" true;
    gpl3Only = mkLicense "gpl3Only" "GPL-3.0-only" "GNU General Public License v3.0 only" true;
    gpl3Plus = mkLicense "gpl3Plus" "GPL-3.0-or-later" "GNU General Public License v3.0 or later" true;
    lgpl21Plus = mkLicense "lgpl21Plus" "LGPL-2.1-or-later" "GNU Lesser General Public License v2.1 or later" true;
    mpl20 = mkLicense "mpl20" "MPL-2.0" "Mozilla Public License 2.0" true;
    isc = mkLicense "isc" "ISC" "ISC License" true;
    unfree = { shortName = "unfree"; fullName = "Unfree"; free = false; deprecated = false; redistributable = false; };
  };

in
# Top level: the sub-sets' functions together, the sub-sets themselves, and a few more.
strings // attrsets // lists // trivial // asserts // meta // options // modules // debug
// stringsWithDeps // fixedPoints // {
  inherit strings attrsets lists trivial asserts meta options modules types versions generators cli
    debug stringsWithDeps kernel fixedPoints
    platforms licenses fix extends release;
  inherit (builtins) catAttrs zipAttrsWith partition groupBy sort concatMap concatLists elem
    elemAt head tail length filter map genList listToAttrs attrNames attrValues getAttr hasAttr
    intersectAttrs removeAttrs mapAttrs isAttrs isList isString isInt isBool isFloat
    isPath seq deepSeq bitAnd bitOr bitXor splitVersion compareVersions
    stringLength substring replaceStrings concatStringsSep match split toJSON;
  inherit mkOptionType isType setType isFunction functionArgs;
  # The two names two sub-sets share: strings' hasPrefix and lists' replicate, as in nixpkgs.
  inherit hasPrefix replicate;
  # Placeholder hashes for fixed-output derivations (all zeros), as nixpkgs defines them.
  fakeHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  fakeSha256 = "0000000000000000000000000000000000000000000000000000";
  fakeSha512 = "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
  version = release;
  maintainers = { };
  teams = { };
  # Deprecated alias of literalExpression.
  literalExample = literalExpression;
}
