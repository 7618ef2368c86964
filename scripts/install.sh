#!/usr/bin/env bash
# Install ncsh: the binary, the nixos-container symlink, shell completions (bash, zsh, fish)
# and man pages (ncsh(1), ncsh-VERB(1)), each where its tools look.
#
# Usage: install.sh [BINARY]   (default: target/release/ncsh, built with `cargo build --release`)
#   PREFIX (default /usr/local) and DESTDIR (default empty) choose where, as make install does.
# The completion scripts call ncsh back when the shell asks, so user verbs
# ($NCSH_VERBS_PATH) and container names are always current.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$here/target/release/ncsh}
prefix=${PREFIX:-/usr/local}
dest=${DESTDIR:-}
if [ ! -x "$bin" ]; then
  echo "install.sh: no ncsh binary at ‘$bin’: run \`cargo build --release\` first, or name the binary" >&2
  exit 1
fi
install -D -m 0755 "$bin" "$dest$prefix/bin/ncsh"
ln -sfn ncsh "$dest$prefix/bin/nixos-container"
ncsh=$dest$prefix/bin/ncsh
share=$dest$prefix/share
for program in ncsh nixos-container; do
  install -d "$share/bash-completion/completions" "$share/zsh/site-functions" \
    "$share/fish/vendor_completions.d"
  "$ncsh" completions bash "$program" > "$share/bash-completion/completions/$program"
  "$ncsh" completions zsh "$program" > "$share/zsh/site-functions/_$program"
  "$ncsh" completions fish "$program" > "$share/fish/vendor_completions.d/$program.fish"
done
install -d "$share/man/man1"
# The built-in verbs only (with the front end's own): a user's verbs are theirs, and
# `ncsh VERB --help` describes them.
NCSH_VERBS_PATH=/nonexistent "$ncsh" man > "$share/man/man1/ncsh.1"
for verb in $(NCSH_VERBS_PATH=/nonexistent "$ncsh" --help | sed -n '/^Verbs:/,/^$/s/^  \([a-z][a-z0-9-]*\) .*/\1/p'); do
  NCSH_VERBS_PATH=/nonexistent "$ncsh" man "$verb" > "$share/man/man1/ncsh-$verb.1"
done
echo "install.sh: installed ncsh in $dest$prefix (binary, nixos-container, completions, man pages)" >&2
