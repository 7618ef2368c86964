# Relative paths inside an imported file resolve against that file.
(import ./a.nix).x + (import ./sub/b.nix).z
