#!/usr/bin/env bash
# Checks scripts/deploy-space.sh in a throwaway repository with a small stand-in bundle: its
# refusals (no token, bad Space id, uncommitted changes, no bundle, stale README), the dry
# run's file list, and a real push to a local bare repository (HF_ENDPOINT=file://...) with
# the model as a Git LFS object. The token never appears in any output.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { printf 'test-deploy-space: FAIL: %s\n' "$*" >&2; exit 1; }
token="hf_TestTokenThatMustNeverBePrinted0123456789"

repo=$tmp/repo
mkdir -p "$repo/scripts" "$repo/deploy/space" "$repo/space/models"
cp "$root/scripts/deploy-space.sh" "$repo/scripts/"
cp "$root/deploy/space/README.md" "$root/deploy/space/.gitattributes" "$repo/deploy/space/"
cp "$root/deploy/space/README.md" "$root/deploy/space/.gitattributes" "$repo/space/"
echo '<!DOCTYPE html><title>Mimir</title>' >"$repo/space/index.html"
head -c 4096 /dev/urandom >"$repo/space/models/tiny.gguf"
echo /space >"$repo/.gitignore"
git -C "$repo" init -q -b main
git -C "$repo" add -A
git -C "$repo" -c user.name=t -c user.email=t@t.invalid commit -q -m fixture
mkdir -p "$tmp/hub/spaces/me"
git init -q --bare "$tmp/hub/spaces/me/tutor"

# Runs the script in the fixture; sets $out (stdout and stderr) and $rc.
run() {
  set +e
  out=$(cd "$repo" && env "$@" 2>&1)
  rc=$?
  set -e
  if grep -qF "$token" <<<"$out"; then fail "the token was printed: $out"; fi
}
expect_refusal() {
  local why=$1; shift
  run "$@"
  [ "$rc" -ne 0 ] || fail "ran although it should refuse ($why): $out"
  grep -qF "$why" <<<"$out" || fail "refusal does not say \"$why\": $out"
}

expect_refusal "HF_TOKEN is not set" -u HF_TOKEN scripts/deploy-space.sh --dry-run me/tutor
expect_refusal "HF_TOKEN is not set" HF_TOKEN= scripts/deploy-space.sh me/tutor
expect_refusal "not a Space id" HF_TOKEN=$token scripts/deploy-space.sh --dry-run "me/tutor; rm -rf /"
expect_refusal "usage" HF_TOKEN=$token scripts/deploy-space.sh --dry-run

echo "<!-- local edit -->" >>"$repo/deploy/space/README.md"
expect_refusal "uncommitted changes" HF_TOKEN=$token scripts/deploy-space.sh --dry-run me/tutor
git -C "$repo" -c user.name=t -c user.email=t@t.invalid commit -qam "README edit"
expect_refusal "differs from deploy/space/README.md" HF_TOKEN=$token scripts/deploy-space.sh --dry-run me/tutor
cp "$repo/deploy/space/README.md" "$repo/space/README.md"
mv "$repo/space/index.html" "$tmp/index.html"
expect_refusal "space/ is not built" HF_TOKEN=$token scripts/deploy-space.sh --dry-run me/tutor
mv "$tmp/index.html" "$repo/space/index.html"

run HF_TOKEN=$token HF_ENDPOINT="file://$tmp/hub" scripts/deploy-space.sh --dry-run me/tutor
[ "$rc" -eq 0 ] || fail "dry run failed: $out"
for line in "4096  models/tiny.gguf (Git LFS)" "  index.html" "  README.md" "  .gitattributes" \
  "4 files" "dry run: would push to file://$tmp/hub/spaces/me/tutor"; do
  grep -qF -- "$line" <<<"$out" || fail "dry run output lacks \"$line\": $out"
done
[ -z "$(git -C "$tmp/hub/spaces/me/tutor" for-each-ref)" ] || fail "the dry run pushed"

run HF_TOKEN=$token HF_ENDPOINT="file://$tmp/hub" scripts/deploy-space.sh me/tutor
[ "$rc" -eq 0 ] || fail "push failed: $out"
space=$tmp/hub/spaces/me/tutor
head_message=$(git -C "$space" log -1 --format=%s main)
[ "$head_message" = "Mimir at $(git -C "$repo" rev-parse HEAD)" ] || fail "commit message: $head_message"
[ "$(git -C "$space" ls-tree -r --name-only main | sort | tr '\n' ' ')" = \
  ".gitattributes README.md index.html models/tiny.gguf " ] || fail "pushed tree: $(git -C "$space" ls-tree -r main)"
git -C "$space" show main:models/tiny.gguf | grep -q "^version https://git-lfs" ||
  fail "the model was not pushed as a Git LFS pointer"
oid=$(git -C "$space" show main:models/tiny.gguf | sed -n 's/^oid sha256://p')
[ "$oid" = "$(sha256sum "$repo/space/models/tiny.gguf" | cut -d' ' -f1)" ] || fail "LFS oid $oid"
[ -f "$space/lfs/objects/${oid:0:2}/${oid:2:2}/$oid" ] || fail "the LFS object did not reach the remote"

echo "test-deploy-space: all checks passed"
