#!/usr/bin/env bash
# ohcommodore cloudinit/init.sh: prepares a new VM (flagship or ship), once.
#
# The program runs it on every VM it provisions. It installs tools, logs gh in,
# installs dotfiles and runs the user's own init hook. It does NOT clone
# TARGET_REPO, write identity.json, start the daemon or touch systemd: the
# program does those. The full contract (variables, skip knobs, exit codes) is
# in cloudinit/README.md; in short:
#
#   ROLE            commodore | captain (default captain)
#   GH_TOKEN_FILE   path of a file holding the GitHub token (preferred)
#   GH_TOKEN        the token itself (used when GH_TOKEN_FILE is not set)
#   TARGET_REPO     owner/repo; only logged (the program clones it)
#   DOTFILES_PATH   dotfiles directory already on this VM (wins over the URL)
#   DOTFILES_URL    git URL of a dotfiles repo (network)
#   INIT_PATH       user init script already on this VM, run once as a hook
#   INIT_URL        https URL of a user init script (network), run the same way
#   OHC_OFFLINE=1   skip every step that needs the internet
#   OHC_SKIP=a,b    skip the named steps (see STEPS below)
#   OHC_SYSTEM=0|1  allow steps that change the system outside $HOME
#                   (default: only when $HOME is the user's login home)
#
# Every step prints exactly one `==> step NAME: ...` line. A step that needs
# the internet fails softly: `==> step NAME failed: <why> (continuing)`, and the
# script still exits 0. A required local step that fails stops the script with
# exit 1; a bad ROLE exits 2. The token is never put in any argv or log: it
# reaches gh on stdin only, and all captured output is scrubbed before it is
# appended to ~/.ohcommodore/init.log.
set -euo pipefail
shopt -s inherit_errexit

STEPS=(packages gh ghauth zellij rust ohmyzsh chezmoi dotfiles shellrc shell hook)
PACKAGES=(ca-certificates curl git zsh tmux jq unzip)

OHC_DIR="$HOME/.ohcommodore"
STATE_DIR="$OHC_DIR/init.d"
LOG_FILE="$OHC_DIR/init.log"
LOCAL_BIN="$HOME/.local/bin"
RC_BEGIN="# >>> ohcommodore >>>"
RC_END="# <<< ohcommodore <<<"

TOKEN=""     # never exported; reaches gh on stdin and the hook via its env
OFFLINE=0
SYSTEM=0
HAVE_ROOT=0  # 1: we are root or have passwordless sudo
SKIP_LIST=","
LOG_READY=0
N_DONE=0 N_ALREADY=0 N_SKIPPED=0 N_FAILED=0
USER_NAME=""
LINKED=0
STEP_TMP=""
SELF=""
if [[ -n "${BASH_SOURCE[0]:-}" && -f "${BASH_SOURCE[0]}" ]]; then
  SELF="${BASH_SOURCE[0]}"
fi

# ---------------------------------------------------------------- helpers

# Replaces the token in $1 with [redacted]; prints the result.
scrub() {
  local s=$1
  if [[ -n "$TOKEN" ]]; then s=${s//"$TOKEN"/[redacted]}; fi
  printf '%s' "$s"
}

now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# One `==> ...` line on stdout and in init.log.
log() {
  local msg
  msg="==> $(scrub "$*")"
  printf '%s\n' "$msg"
  if [[ $LOG_READY == 1 ]]; then
    printf '%s %s\n' "$(now)" "$msg" >>"$LOG_FILE" || true
  fi
}

# Stops the script: a required local step failed (exit 1) or misuse (exit 2).
die() {
  local code=$1
  shift
  log "$*"
  exit "$code"
}

truthy() {
  case "${1,,}" in 1 | true | yes | on) return 0 ;; *) return 1 ;; esac
}

# "~/x" -> "$HOME/x"; relative paths are taken from $HOME.
expand_path() {
  local p=$1
  case "$p" in
    \~) p=$HOME ;;
    \~/*) p="$HOME/${p:2}" ;;
    /*) ;;
    *) p="$HOME/$p" ;;
  esac
  printf '%s' "$p"
}

# Last non-empty line of a file, scrubbed, without carriage-return progress,
# at most 200 characters.
last_line() {
  local file=$1 line last=""
  [[ -f "$file" ]] || return 0
  while IFS= read -r line || [[ -n "$line" ]]; do
    line=${line%$'\r'}
    line=${line##*$'\r'}
    if [[ -n "${line//[[:space:]]/}" ]]; then last=$line; fi
  done <"$file"
  last=$(scrub "$last")
  last=${last#"${last%%[![:space:]]*}"}
  if ((${#last} > 200)); then last="${last:0:197}..."; fi
  printf '%s' "$last"
}

# Appends a step's captured output to init.log, indented and scrubbed.
append_output() {
  local name=$1 file=$2 line
  [[ -s "$file" ]] || return 0
  while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ -n "$TOKEN" ]]; then line=${line//"$TOKEN"/[redacted]}; fi
    printf '    [%s] %s\n' "$name" "$line"
  done <"$file" >>"$LOG_FILE" || true
}

sha256_stdin() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 | cut -d' ' -f1
  else
    cksum | cut -d' ' -f1
  fi
}

sha256_file() { sha256_stdin <"$1"; }

# Field $2 of user $1's passwd entry (6: home, 7: shell), or nothing.
passwd_field() {
  local line
  if command -v getent >/dev/null 2>&1; then
    line=$(getent passwd "$1" 2>/dev/null || true)
  else
    line=$(awk -F: -v u="$1" '$1 == u' /etc/passwd 2>/dev/null || true)
  fi
  [[ -n "$line" ]] || return 0
  printf '%s' "$(cut -d: -f"$2" <<<"$line")"
}

# A fingerprint of a directory's files (names and contents), ignoring .git.
dir_hash() {
  local dir=$1
  (
    cd "$dir"
    find . -path ./.git -prune -o \( -type f -o -type l \) -print0 |
      LC_ALL=C sort -z |
      while IFS= read -r -d '' f; do
        if [[ -L "$f" ]]; then
          printf '%s -> %s\n' "$f" "$(readlink "$f")"
        else
          printf '%s %s\n' "$f" "$(sha256_file "$f")"
        fi
      done
  ) | sha256_stdin
}

# Writes a marker file (0600) atomically.
write_marker() {
  local file=$1 content=$2
  (umask 077 && printf '%s\n' "$content" >"$file.tmp") && mv -f "$file.tmp" "$file"
}

marker_is() {
  local file=$1 content=$2
  [[ -f "$file" ]] && [[ "$(<"$file")" == "$content" ]]
}

# ------------------------------------------------ step outcome (in steps)
# A step runs in a subshell with `set -e`; its output goes to init.log only.
# It reports its outcome on fd 3 with one of these, or just returns (done).

done_() {
  printf 'DONE\t%s\n' "$*" >&3
  exit 0
}
already() {
  printf 'ALREADY\t%s\n' "$*" >&3
  exit 0
}
skip() {
  printf 'SKIP\t%s\n' "$*" >&3
  exit 0
}
# Failure; a required step stops the script.
fail() {
  printf 'FAIL\t%s\n' "$*" >&3
  exit 1
}
# Failure that never stops the script (the network was needed).
fail_soft() {
  printf 'SOFTFAIL\t%s\n' "$*" >&3
  exit 1
}

need_network() {
  if [[ $OFFLINE == 1 ]]; then skip "offline: OHC_OFFLINE=1"; fi
}

need_system() {
  if [[ $SYSTEM != 1 ]]; then
    skip "HOME is not the login home of $USER_NAME, so the system is left alone; OHC_SYSTEM=1 allows it"
  fi
}

need_root() {
  if [[ $HAVE_ROOT != 1 ]]; then skip "needs root: not root and no passwordless sudo"; fi
}

as_root() {
  if ((EUID == 0)); then "$@"; else sudo -n "$@"; fi
}

# Runs a command, printing its output; on failure TRY_LAST holds its last
# output line and the exit code is returned.
TRY_LAST=""
try() {
  local out rc
  out=$(mktemp)
  "$@" >"$out" 2>&1 && rc=0 || rc=$?
  cat "$out"
  TRY_LAST=$(last_line "$out")
  rm -f "$out"
  return "$rc"
}

fetch() {
  local url=$1 dest=$2
  case "$url" in
    https://*) ;;
    *) fail_soft "refusing to download $url: only https URLs are used" ;;
  esac
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --proto '=https' --tlsv1.2 --retry 2 --connect-timeout 15 \
      --max-time 900 -o "$dest" "$url"
  elif command -v wget >/dev/null 2>&1; then
    wget -q --https-only --tries=3 --timeout=30 -O "$dest" "$url"
  else
    fail_soft "needs curl or wget to download"
  fi
}

# The tag a GitHub "releases/latest" link redirects to, e.g. v2.63.0.
latest_tag() {
  local repo=$1 url
  command -v curl >/dev/null 2>&1 || fail_soft "needs curl to find the latest $repo release"
  url=$(curl -fsSLI --proto '=https' --connect-timeout 15 --max-time 60 \
    -o /dev/null -w '%{url_effective}' "https://github.com/$repo/releases/latest")
  case "$url" in
    */tag/*) printf '%s' "${url##*/}" ;;
    *) fail_soft "could not find the latest release of $repo" ;;
  esac
}

# ------------------------------------------------------------------ steps

step_packages() {
  command -v apt-get >/dev/null 2>&1 || skip "no apt-get on this system"
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then already "${PACKAGES[*]}"; fi
  need_network
  need_system
  need_root
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"
  done_ "installed ${missing[*]}"
}

step_gh() {
  if command -v gh >/dev/null 2>&1; then already "$(command -v gh)"; fi
  need_network
  local arch ver name tmp
  case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) fail_soft "no gh build for $(uname -m)" ;;
  esac
  ver=${OHC_GH_VERSION:-}
  if [[ -z "$ver" ]]; then ver=$(latest_tag cli/cli); fi
  ver=${ver#v}
  name="gh_${ver}_linux_${arch}"
  tmp=$STEP_TMP
  fetch "https://github.com/cli/cli/releases/download/v$ver/$name.tar.gz" "$tmp/gh.tgz"
  fetch "https://github.com/cli/cli/releases/download/v$ver/gh_${ver}_checksums.txt" "$tmp/sums"
  local want got
  want=$(awk -v f="$name.tar.gz" '$2 == f { print $1 }' "$tmp/sums")
  got=$(sha256_file "$tmp/gh.tgz")
  [[ -n "$want" && "$want" == "$got" ]] || fail_soft "checksum mismatch for $name.tar.gz"
  tar -xzf "$tmp/gh.tgz" -C "$tmp"
  mkdir -p "$LOCAL_BIN"
  install -m 0755 "$tmp/$name/bin/gh" "$LOCAL_BIN/gh"
  done_ "gh $ver installed in ~/.local/bin"
}

step_ghauth() {
  [[ -n "$TOKEN" ]] || skip "no GH_TOKEN_FILE or GH_TOKEN"
  command -v gh >/dev/null 2>&1 || skip "gh is not installed"
  local host=${GH_HOST:-github.com} marker="$STATE_DIR/ghauth.done" want
  # A hash of the token (never the token) tells a rotated token apart.
  want="$host $(sha256_stdin <<<"$TOKEN")"
  if marker_is "$marker" "$want" && gh auth status --hostname "$host" >/dev/null 2>&1; then
    already "gh is logged in to $host"
  fi
  # The token goes on stdin (a here-string is not argv).
  try gh auth login --hostname "$host" --git-protocol https --with-token <<<"$TOKEN" ||
    fail_soft "gh auth login: ${TRY_LAST:-exit $?}"
  try gh auth setup-git --hostname "$host" ||
    fail_soft "gh auth setup-git: ${TRY_LAST:-exit $?}"
  write_marker "$marker" "$want"
  done_ "gh logged in to $host; git uses gh for credentials"
}

step_zellij() {
  if command -v zellij >/dev/null 2>&1; then already "$(command -v zellij)"; fi
  need_network
  local arch url tmp
  case "$(uname -m)" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) fail_soft "no zellij build for $(uname -m)" ;;
  esac
  if [[ -n "${OHC_ZELLIJ_VERSION:-}" ]]; then
    url="https://github.com/zellij-org/zellij/releases/download/v${OHC_ZELLIJ_VERSION#v}"
  else
    url="https://github.com/zellij-org/zellij/releases/latest/download"
  fi
  tmp=$STEP_TMP
  fetch "$url/zellij-$arch-unknown-linux-musl.tar.gz" "$tmp/zellij.tgz"
  tar -xzf "$tmp/zellij.tgz" -C "$tmp"
  mkdir -p "$LOCAL_BIN"
  install -m 0755 "$tmp/zellij" "$LOCAL_BIN/zellij"
  done_ "zellij installed in ~/.local/bin"
}

step_rust() {
  if [[ -x "$HOME/.cargo/bin/rustup" ]] || command -v rustup >/dev/null 2>&1; then
    already "rustup is installed"
  fi
  need_network
  local tmp=$STEP_TMP
  fetch "https://sh.rustup.rs" "$tmp/rustup-init.sh"
  sh "$tmp/rustup-init.sh" -y --no-modify-path --profile minimal
  done_ "rustup and a minimal stable toolchain in ~/.cargo"
}

step_ohmyzsh() {
  if [[ -d "$HOME/.oh-my-zsh" ]]; then already "found ~/.oh-my-zsh"; fi
  need_network
  command -v zsh >/dev/null 2>&1 || skip "zsh is not installed"
  command -v git >/dev/null 2>&1 || fail_soft "git is not installed"
  local tmp=$STEP_TMP
  fetch "https://raw.githubusercontent.com/ohmyzsh/ohmyzsh/master/tools/install.sh" "$tmp/install.sh"
  RUNZSH=no CHSH=no KEEP_ZSHRC=yes ZSH="$HOME/.oh-my-zsh" sh "$tmp/install.sh" --unattended
  done_ "installed in ~/.oh-my-zsh"
}

# Is this directory a chezmoi source state?
is_chezmoi_source() {
  local dir=$1 e
  [[ -f "$dir/.chezmoiroot" ]] && return 0
  for e in "$dir"/* "$dir"/.chezmoi*; do
    case "${e##*/}" in
      dot_* | private_* | executable_* | symlink_* | readonly_* | .chezmoi*)
        [[ -e "$e" ]] && return 0
        ;;
    esac
  done
  return 1
}

# The directory dotfiles are installed from (a `dotfiles/` subdirectory of a
# repo that has no install.sh of its own, as the seeds allowed).
dotfiles_source() {
  local dir=$1
  if [[ ! -f "$dir/install.sh" && -d "$dir/dotfiles" ]]; then
    printf '%s' "$dir/dotfiles"
  else
    printf '%s' "$dir"
  fi
}

step_chezmoi() {
  if command -v chezmoi >/dev/null 2>&1; then already "$(command -v chezmoi)"; fi
  if [[ -n "${DOTFILES_PATH:-}" ]]; then
    local dir
    dir=$(expand_path "$DOTFILES_PATH")
    if [[ ! -d "$dir" ]] || ! is_chezmoi_source "$(dotfiles_source "$dir")"; then
      skip "not needed: DOTFILES_PATH is not a chezmoi source"
    fi
  elif [[ -z "${DOTFILES_URL:-}" ]]; then
    skip "not needed: no DOTFILES_PATH or DOTFILES_URL"
  fi
  need_network
  local tmp=$STEP_TMP
  fetch "https://get.chezmoi.io" "$tmp/get.sh"
  mkdir -p "$LOCAL_BIN"
  sh "$tmp/get.sh" -b "$LOCAL_BIN"
  done_ "chezmoi installed in ~/.local/bin"
}

# Links every top-level entry of $1 into $HOME; an existing different file is
# moved aside to NAME.ohc-backup first. Sets LINKED to how many links it made.
link_dotfiles() {
  local src=$1 entry name target backup n=0
  shopt -s nullglob dotglob
  for entry in "$src"/*; do
    name=${entry##*/}
    case "$name" in
      . | .. | .git | .github | .gitignore | .gitmodules | .DS_Store | README* | LICENSE* | install.sh) continue ;;
    esac
    target="$HOME/$name"
    if [[ -L "$target" && "$(readlink "$target")" == "$entry" ]]; then continue; fi
    if [[ -e "$target" || -L "$target" ]]; then
      backup="$target.ohc-backup"
      if [[ -e "$backup" || -L "$backup" ]]; then backup="$target.ohc-backup.$$"; fi
      mv "$target" "$backup"
      echo "moved existing ~/$name to ${backup#"$HOME/"}"
    fi
    ln -s "$entry" "$target"
    n=$((n + 1))
  done
  shopt -u nullglob dotglob
  LINKED=$n
}

# Installs dotfiles from directory $1; $2 names where they came from.
install_dotfiles() {
  local dir=$1 label=$2 src marker="$STATE_DIR/dotfiles.done" want how
  src=$(cd "$(dotfiles_source "$dir")" && pwd -P)
  want="$label $(dir_hash "$src")"
  if marker_is "$marker" "$want"; then already "$label"; fi
  if [[ -f "$src/install.sh" ]]; then
    cd "$src"
    try bash ./install.sh || fail "install.sh from $label: ${TRY_LAST:-exit $?}"
    cd "$HOME"
    how="ran install.sh"
  elif is_chezmoi_source "$src"; then
    command -v chezmoi >/dev/null 2>&1 ||
      fail_soft "$label is a chezmoi source, and chezmoi is not installed"
    try chezmoi --source "$src" --destination "$HOME" --no-tty --force apply ||
      fail "chezmoi apply from $label: ${TRY_LAST:-exit $?}"
    how="chezmoi apply"
  else
    link_dotfiles "$src"
    how="linked $LINKED entries into ~"
  fi
  write_marker "$marker" "$want"
  done_ "$how from $label"
}

step_dotfiles() {
  if [[ -n "${DOTFILES_PATH:-}" ]]; then
    local dir
    dir=$(expand_path "$DOTFILES_PATH")
    [[ -d "$dir" ]] || fail "DOTFILES_PATH $dir is not a directory"
    install_dotfiles "$dir" "DOTFILES_PATH $DOTFILES_PATH"
  elif [[ -n "${DOTFILES_URL:-}" ]]; then
    local url=$DOTFILES_URL dest="$OHC_DIR/dotfiles" urlmark="$STATE_DIR/dotfiles.url"
    if ! { [[ -d "$dest/.git" ]] && marker_is "$urlmark" "$url"; }; then
      need_network
      command -v git >/dev/null 2>&1 || fail_soft "git is not installed"
      rm -rf "$dest.tmp"
      GIT_TERMINAL_PROMPT=0 try git clone -q --depth 1 -- "$url" "$dest.tmp" ||
        fail_soft "git clone of DOTFILES_URL: ${TRY_LAST:-exit $?}"
      rm -rf "$dest"
      mv "$dest.tmp" "$dest"
      write_marker "$urlmark" "$url"
    fi
    install_dotfiles "$dest" "DOTFILES_URL $url"
  else
    skip "no DOTFILES_PATH or DOTFILES_URL"
  fi
}

step_shellrc() {
  local block files=() f changed=() kept=()
  # The single quotes are deliberate: $HOME and $PATH expand at login.
  # shellcheck disable=SC2016
  block=$(printf '%s\n%s\n%s' "$RC_BEGIN" \
    'export PATH="$HOME/.ohcommodore/bin:$HOME/.local/bin:$HOME/.cargo/bin:$PATH"' "$RC_END")
  files=("$HOME/.profile")
  if [[ -e "$HOME/.bashrc" || -L "$HOME/.bashrc" ]]; then files+=("$HOME/.bashrc"); fi
  if command -v zsh >/dev/null 2>&1 || [[ -e "$HOME/.zshrc" ]]; then files+=("$HOME/.zshenv"); fi
  for f in "${files[@]}"; do
    if [[ -L "$f" ]]; then
      kept+=("${f##*/}")
      continue
    fi
    if [[ -f "$f" ]] && grep -qF "$RC_BEGIN" "$f"; then continue; fi
    if [[ -s "$f" ]]; then printf '\n' >>"$f"; fi
    printf '%s\n' "$block" >>"$f"
    changed+=("${f##*/}")
  done
  local note=""
  if ((${#kept[@]})); then note="; left symlinked ${kept[*]} alone"; fi
  if ((${#changed[@]} == 0)); then already "PATH block present$note"; fi
  done_ "PATH block added to ${changed[*]}$note"
}

step_shell() {
  command -v zsh >/dev/null 2>&1 || skip "zsh is not installed"
  local user=$USER_NAME zsh current
  zsh=$(command -v zsh)
  current=$(passwd_field "$user" 7)
  if [[ "${current##*/}" == zsh ]]; then already "login shell is $current"; fi
  need_system
  need_root
  try as_root usermod -s "$zsh" "$user" || fail_soft "usermod: ${TRY_LAST:-exit $?}"
  done_ "login shell of $user is now $zsh"
}

step_hook() {
  if [[ -n "${OHC_INIT_HOOK:-}" ]]; then skip "already running inside an init hook"; fi
  local file label
  if [[ -n "${INIT_PATH:-}" ]]; then
    file=$(expand_path "$INIT_PATH")
    [[ -f "$file" ]] || fail "INIT_PATH $file is not a file"
    if [[ -n "$SELF" ]] && [[ "$file" -ef "$SELF" || "$(sha256_file "$file")" == "$(sha256_file "$SELF")" ]]; then
      skip "INIT_PATH is this script"
    fi
    label="INIT_PATH $INIT_PATH"
  elif [[ -n "${INIT_URL:-}" ]]; then
    file="$OHC_DIR/init-hook.sh"
    label="INIT_URL $INIT_URL"
    if ! { [[ -f "$file" ]] && marker_is "$STATE_DIR/hook.url" "$INIT_URL"; }; then
      need_network
      local tmp="$STEP_TMP/init-hook.sh"
      try fetch "$INIT_URL" "$tmp" || fail_soft "download of INIT_URL: ${TRY_LAST:-exit $?}"
      chmod 700 "$tmp"
      mv -f "$tmp" "$file"
      write_marker "$STATE_DIR/hook.url" "$INIT_URL"
    fi
  else
    skip "no INIT_PATH or INIT_URL"
  fi
  local marker="$STATE_DIR/hook.done" want rc=0
  want="$(sha256_file "$file")"
  if marker_is "$marker" "$want"; then already "$label"; fi
  # The hook gets the seeds' environment; the token only in its environment.
  cd "$HOME"
  if [[ -n "$TOKEN" ]]; then
    OHC_INIT_HOOK=1 GH_TOKEN="$TOKEN" try bash "$file" || rc=$?
  else
    OHC_INIT_HOOK=1 try bash "$file" || rc=$?
  fi
  ((rc == 0)) || fail "$label exited $rc${TRY_LAST:+: $TRY_LAST}"
  write_marker "$marker" "$want"
  done_ "ran $label"
}

# ----------------------------------------------------------------- runner

run_step() {
  local name=$1 kind=$2 fn=$3
  if [[ "$SKIP_LIST" == *",$name,"* ]]; then
    N_SKIPPED=$((N_SKIPPED + 1))
    log "step $name: skipped (OHC_SKIP)"
    return 0
  fi
  local out note rc status detail
  out=$(mktemp)
  note=$(mktemp)
  printf '%s --- step %s\n' "$(now)" "$name" >>"$LOG_FILE"
  set +e
  (
    set -e
    STEP_TMP=$(mktemp -d)
    trap 'rm -rf "$STEP_TMP"' EXIT
    "$fn"
  ) </dev/null >"$out" 2>&1 3>"$note" 9>&-
  rc=$?
  set -e
  append_output "$name" "$out"
  status=""
  detail=""
  if [[ -s "$note" ]]; then
    IFS=$'\t' read -r status detail <"$note" || true
  fi
  detail=$(scrub "$detail")
  if ((rc == 0)); then
    case "$status" in
      ALREADY)
        N_ALREADY=$((N_ALREADY + 1))
        log "step $name: already done${detail:+ ($detail)}"
        ;;
      SKIP)
        N_SKIPPED=$((N_SKIPPED + 1))
        log "step $name: skipped${detail:+ ($detail)}"
        ;;
      *)
        N_DONE=$((N_DONE + 1))
        log "step $name: done${detail:+ ($detail)}"
        ;;
    esac
  else
    local why=$detail
    if [[ -z "$why" ]]; then why=$(last_line "$out"); fi
    if [[ -z "$why" ]]; then why="exit code $rc"; fi
    rm -f "$out" "$note"
    if [[ "$kind" == hard && "$status" != SOFTFAIL ]]; then
      die 1 "step $name failed: $why (stopping; see ~/.ohcommodore/init.log)"
    fi
    N_FAILED=$((N_FAILED + 1))
    log "step $name failed: $why (continuing)"
    return 0
  fi
  rm -f "$out" "$note"
}

# ------------------------------------------------------------------- main

read_token() {
  if [[ -n "${GH_TOKEN_FILE:-}" ]]; then
    local f mode
    f=$(expand_path "$GH_TOKEN_FILE")
    [[ -f "$f" && -r "$f" ]] || die 1 "GH_TOKEN_FILE $f is not a readable file"
    mode=$(stat -c %a "$f" 2>/dev/null || true)
    if [[ "$mode" =~ ^[0-7]+$ ]] && (((8#$mode & 8#077) != 0)); then
      log "warning: GH_TOKEN_FILE $f has mode $mode; it should be 0600"
    fi
    IFS= read -r TOKEN <"$f" || true
    TOKEN=${TOKEN//[[:space:]]/}
    [[ -n "$TOKEN" ]] || die 1 "GH_TOKEN_FILE $f is empty"
  elif [[ -n "${GH_TOKEN:-}" ]]; then
    TOKEN=${GH_TOKEN//[[:space:]]/}
  fi
  # Nothing we start sees GH_TOKEN in its environment (gh would refuse to
  # store a token while GH_TOKEN is set), except the user's hook.
  unset GH_TOKEN
}

parse_skip() {
  local raw=${OHC_SKIP:-} item known
  raw=${raw,,}
  raw=${raw//[[:space:]]/,}
  local IFS=,
  for item in $raw; do
    [[ -n "$item" ]] || continue
    case "$item" in oh-my-zsh) item=ohmyzsh ;; esac
    known=0
    local s
    for s in "${STEPS[@]}"; do [[ "$s" == "$item" ]] && known=1; done
    if [[ $known == 0 ]]; then
      log "warning: OHC_SKIP names an unknown step '$item' (steps: ${STEPS[*]})"
      continue
    fi
    SKIP_LIST+="$item,"
  done
}

detect_system() {
  if [[ -n "${OHC_SYSTEM:-}" ]]; then
    if truthy "$OHC_SYSTEM"; then SYSTEM=1; else SYSTEM=0; fi
    return 0
  fi
  local login_home
  login_home=$(passwd_field "$USER_NAME" 6)
  if [[ -n "$login_home" && "$login_home" -ef "$HOME" ]]; then SYSTEM=1; else SYSTEM=0; fi
}

detect_root() {
  if ((EUID == 0)); then
    HAVE_ROOT=1
  elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    HAVE_ROOT=1
  fi
}

main() {
  [[ -n "${HOME:-}" && -d "$HOME" ]] || die 1 "HOME is not set or is not a directory"
  ROLE=${ROLE:-captain}
  case "$ROLE" in
    commodore | captain) ;;
    *) die 2 "ROLE must be commodore or captain (got '$ROLE')" ;;
  esac
  export ROLE
  USER_NAME=$(id -un 2>/dev/null || id -u)

  mkdir -p "$STATE_DIR" "$LOCAL_BIN" "$OHC_DIR/bin" || die 1 "cannot create $STATE_DIR"
  chmod 700 "$OHC_DIR" "$STATE_DIR"
  (umask 077 && touch "$LOG_FILE") || die 1 "cannot write $LOG_FILE"
  chmod 600 "$LOG_FILE"
  LOG_READY=1

  # One run at a time.
  if command -v flock >/dev/null 2>&1; then
    exec 9>>"$OHC_DIR/init.lock"
    flock -w 900 9 || die 1 "another init.sh run holds $OHC_DIR/init.lock"
  fi

  read_token
  if truthy "${OHC_OFFLINE:-0}"; then OFFLINE=1; fi
  parse_skip
  detect_system
  detect_root
  PATH="$OHC_DIR/bin:$LOCAL_BIN:$HOME/.cargo/bin:$PATH"
  export PATH

  local skipped=${SKIP_LIST#,}
  skipped=${skipped%,}
  printf '%s === init.sh run\n' "$(now)" >>"$LOG_FILE"
  log "init.sh: role=$ROLE user=$USER_NAME root=$([[ $HAVE_ROOT == 1 ]] && echo yes || echo no) system=$([[ $SYSTEM == 1 ]] && echo yes || echo no) offline=$([[ $OFFLINE == 1 ]] && echo yes || echo no) skip=${skipped:-none} token=$([[ -n "$TOKEN" ]] && echo yes || echo no)"
  if [[ -n "${TARGET_REPO:-}" ]]; then
    log "TARGET_REPO=$TARGET_REPO (cloned by ohcommodore, not by init.sh)"
  fi

  run_step packages net step_packages
  run_step gh net step_gh
  run_step ghauth soft step_ghauth
  run_step zellij net step_zellij
  run_step rust net step_rust
  run_step ohmyzsh net step_ohmyzsh
  run_step chezmoi net step_chezmoi
  run_step dotfiles hard step_dotfiles
  run_step shellrc hard step_shellrc
  run_step shell soft step_shell
  run_step hook hard step_hook

  log "init.sh finished: $N_DONE done, $N_ALREADY already done, $N_SKIPPED skipped, $N_FAILED failed softly"
}

main "$@"
