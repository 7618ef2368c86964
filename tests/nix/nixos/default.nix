# A stand-in for <nixpkgs/nixos> in ncsh's tests: evaluates the container's configuration.nix
# with a tiny `lib` and builds a real derivation whose `init` execs the host's systemd (the
# container binds the host's /usr) and whose `bin/switch-to-configuration` notes its call in
# /run/switched (or fails while /etc/fail-switch exists in the container). Any `throw` in the
# configuration fails the build.
{ configuration ? <nixos-config>, system ? builtins.currentSystem, ... }:
let
  lib = { mkDefault = x: x; mkForce = x: x; };
  load = file: (import file) { inherit config lib; pkgs = { }; };
  top = load configuration;
  imported = builtins.foldl' (acc: file: acc // load file) { } (top.imports or [ ]);
  config = builtins.removeAttrs (top // imported) [ "imports" ];
  greeting = config.environment.etc.greeting.text or "none";
in
{
  system = derivation {
    name = "nixos-system-${config.networking.hostName}-test";
    inherit system;
    builder = "/bin/sh";
    configJson = builtins.toJSON config;
    inherit greeting;
    args = [ "-c" ''
      /bin/mkdir -p $out/etc
      echo "$configJson" > $out/configuration.json
      echo "$greeting" > $out/etc/greeting
      echo ${system} > $out/system
      echo '#!/bin/sh' > $out/init
      echo 'echo "$0" > /run/nix-init' >> $out/init
      echo 'exec /usr/lib/systemd/systemd "$@"' >> $out/init
      /bin/chmod 555 $out/init
      /bin/mkdir -p $out/bin
      echo '#!/bin/sh' > $out/bin/switch-to-configuration
      echo 'if [ -e /etc/fail-switch ]; then echo "switch refused: /etc/fail-switch" >&2; exit 1; fi' >> $out/bin/switch-to-configuration
      echo 'echo "$0 $1" > /run/switched' >> $out/bin/switch-to-configuration
      /bin/chmod 555 $out/bin/switch-to-configuration
    '' ];
  };
}
