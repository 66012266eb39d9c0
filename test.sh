#!/usr/bin/env bash
# pushmail's whole test suite: the one test command the README gives and
# .ci/run calls. It installs the third-party clients the interop tests
# drive (swaks, openssl, python3, mbsync from isync) when they are missing,
# then checks formatting, vets, and runs every test with the race detector.
set -euo pipefail
cd "$(dirname "$0")"

# Interop tests run real clients no one here wrote; install what is missing.
missing=()
for tool in swaks:swaks openssl:openssl python3:python3 mbsync:isync; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "test.sh: installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq "${missing[@]}" >/dev/null
	elif command -v sudo >/dev/null 2>&1; then
		echo "test.sh: installing ${missing[*]} with sudo"
		sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
		sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	else
		echo "test.sh: cannot install ${missing[*]} (not root, no sudo): their interop tests will skip" >&2
	fi
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "test.sh: gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
go test -race -count=1 -timeout 20m "$@" ./...
