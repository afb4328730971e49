#!/usr/bin/env bash
# Pushes the built Space bundle (space/, from `make space`) to a Hugging Face Space repository.
#
#   HF_TOKEN=hf_... scripts/deploy-space.sh [--dry-run] OWNER/SPACE
#
# Refuses to run with uncommitted changes (the Space must match a commit), without HF_TOKEN,
# without git-lfs, or when space/ is missing or was built from another README template.
# The bundle is committed in a fresh temporary repository (message: the source commit) and
# force-pushed to the Space's main branch, replacing what is there. The token reaches git only
# through a credential helper that reads it from the environment: it is never on a command
# line, in a URL, in a file or in the output. --dry-run does everything but the push and prints
# the files with their sizes. HF_ENDPOINT (default https://huggingface.co) names another hub.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'deploy-space: %s\n' "$*"; }
die() { say "$*" >&2; exit 1; }
usage() { echo "usage: HF_TOKEN=... $0 [--dry-run] OWNER/SPACE" >&2; exit 2; }

dry_run=false
space_id=
for arg in "$@"; do
  case $arg in
    --dry-run) dry_run=true ;;
    -*) usage ;;
    *) [ -z "$space_id" ] || usage; space_id=$arg ;;
  esac
done
[ -n "$space_id" ] || usage
[[ $space_id =~ ^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
  die "\"$space_id\" is not a Space id (OWNER/NAME)"
[ -n "${HF_TOKEN:-}" ] ||
  die "HF_TOKEN is not set: export a write token from https://huggingface.co/settings/tokens"
[ -z "$(git status --porcelain)" ] ||
  die "uncommitted changes: commit or stash them first, so that the Space matches a commit"
{ [ -f space/index.html ] && [ -f space/README.md ]; } || die "space/ is not built: run make space"
cmp -s space/README.md deploy/space/README.md ||
  die "space/README.md differs from deploy/space/README.md: run make space again"
git lfs version >/dev/null 2>&1 ||
  die "git-lfs is missing (the bundled model needs it): apt-get install git-lfs"

source_commit=$(git rev-parse HEAD)
endpoint=${HF_ENDPOINT:-https://huggingface.co}
remote="${endpoint%/}/spaces/$space_id"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R space/. "$work/"
cd "$work"
git init -q -b main
git lfs install --local >/dev/null
git config user.name "Mimir deploy"
git config user.email "deploy@mimir.invalid"
# An empty helper first drops the user's own helpers; the next one answers with $HF_TOKEN,
# expanded by the helper's shell when git asks, so the token is never written anywhere.
git config credential.helper ''
# shellcheck disable=SC2016
git config --add credential.helper '!f() { echo username=hf; echo "password=$HF_TOKEN"; }; f'
git add -A
git commit -q -m "Mimir at $source_commit"

lfs_files=$(git lfs ls-files -n)
total=0
count=0
while IFS= read -r -d '' file; do
  size=$(stat -c %s "$file")
  total=$((total + size))
  count=$((count + 1))
  mark=
  grep -qxF "$file" <<<"$lfs_files" && mark=" (Git LFS)"
  printf '%12d  %s%s\n' "$size" "$file" "$mark"
done < <(git ls-files -z)
say "$count files, $total bytes, commit $source_commit"

if $dry_run; then
  say "dry run: would push to $remote"
  exit 0
fi
say "pushing to $remote"
GIT_TERMINAL_PROMPT=0 git push -q --force "$remote" main:main
say "done: ${endpoint%/}/spaces/$space_id"
