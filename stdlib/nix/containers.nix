# The host options `ncsh apply FILE` reads: `containers.<name>` with NixOS's names, types and
# defaults (nixos/modules/virtualisation/nixos-containers.nix), written for ncsh. A host module
# may set only these (and `boot.enableContainers`, accepted and ignored).
{ lib, ... }:
let
  inherit (lib) mkOption types;
  str = types.str;
  nullStr = mkOption { type = types.nullOr str; default = null; };
  # The options of the main veth pair, which an extra veth has too.
  networkOptions = {
    hostBridge = nullStr;
    forwardPorts = mkOption {
      type = types.listOf (types.submodule {
        options = {
          protocol = mkOption { type = str; default = "tcp"; };
          hostPort = mkOption { type = types.port; };
          containerPort = mkOption { type = types.nullOr types.port; default = null; };
        };
      });
      default = [ ];
    };
    hostAddress = nullStr;
    hostAddress6 = nullStr;
    localAddress = nullStr;
    localAddress6 = nullStr;
  };
  bindMount = { name, ... }: {
    options = {
      mountPoint = mkOption { type = str; default = name; };
      hostPath = nullStr;
      isReadOnly = mkOption { type = types.bool; default = true; };
    };
  };
  allowedDevice = {
    options = {
      node = mkOption { type = str; };
      modifier = mkOption { type = str; };
    };
  };
  container = { name, ... }: {
    options = networkOptions // {
      # null: not defined (NixOS's `options.config.isDefined`), which `path` and `flake` need.
      config = mkOption { type = types.nullOr types.deferredModule; default = null; };
      path = mkOption { type = types.nullOr types.path; default = null; };
      flake = nullStr;
      autoStart = mkOption { type = types.bool; default = false; };
      privateNetwork = mkOption { type = types.bool; default = false; };
      localMacAddress = mkOption {
        type = types.nullOr (types.strMatching "([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}");
        default = null;
      };
      networkNamespace = mkOption { type = types.nullOr types.path; default = null; };
      ephemeral = mkOption { type = types.bool; default = false; };
      enableTun = mkOption { type = types.bool; default = false; };
      copyResolvConf = mkOption { type = types.bool; default = true; };
      privateUsers = mkOption {
        type = types.either types.ints.u32 (types.enum [ "no" "identity" "pick" ]);
        default = "no";
      };
      interfaces = mkOption { type = types.listOf str; default = [ ]; };
      macvlans = mkOption { type = types.listOf str; default = [ ]; };
      extraVeths = mkOption {
        type = types.attrsOf (types.submodule { options = networkOptions; });
        default = { };
      };
      restartIfChanged = mkOption { type = types.bool; default = true; };
      timeoutStartSec = mkOption { type = str; default = "1min"; };
      bindMounts = mkOption { type = types.attrsOf (types.submodule bindMount); default = { }; };
      allowedDevices = mkOption { type = types.listOf (types.submodule allowedDevice); default = [ ]; };
      tmpfs = mkOption { type = types.listOf str; default = [ ]; };
      additionalCapabilities = mkOption { type = types.listOf str; default = [ ]; };
      extraFlags = mkOption { type = types.listOf str; default = [ ]; };
      specialArgs = mkOption { type = types.attrsOf types.unspecified; default = { }; };
    };
  };
in
{
  options.containers = mkOption {
    type = types.attrsOf (types.submodule container);
    default = { };
  };
  options.boot.enableContainers = mkOption { type = types.bool; default = true; };
}
