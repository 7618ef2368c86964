# A file whose value is a function.
x: x * 2
