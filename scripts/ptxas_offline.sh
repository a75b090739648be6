#!/usr/bin/env bash
# Offline ptxas check of the wgmma kernels, on a machine without a GPU or a CUDA toolkit: fetches the CUDA 12.4
# toolkit package of Debian 13's non-free archive (the Debian mirror this machine's apt already uses), keeps its
# ptxas under ~/.cache/sageattn-ptxas, writes every kernel's PTX with `sageattn ptx` and runs `ptxas -v` for sm_90a on
# the Hopper kernels.
#
# What it is good for: ptxas's C75xx warnings (C7513/C7514/C7515: wgmma serialized), which cost 20-40% when they
# appear (docs/hopper.md). Its register and spill figures are ptxas 12.4's: the GPU machine's newer ptxas allocates
# differently (the FP8 kernel at W = 2: 96-byte spill here, none there), so judge spills on the GPU machine.
#
# Usage: scripts/ptxas_offline.sh [PTX_DIR]   (without PTX_DIR: builds the CLI and writes the PTX to a temp folder)
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${SAGEATTN_PTXAS_CACHE:-$HOME/.cache/sageattn-ptxas}"
ptxas="$cache/usr/bin/ptxas"
if [ ! -x "$ptxas" ]; then
  mkdir -p "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial" "$cache/apt/sources"
  uri=$(grep -m1 -E '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | awk '{print $2}')
  [ -n "$uri" ] || { echo "no Debian apt source found in /etc/apt/sources.list.d/debian.sources" >&2; exit 1; }
  printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uri" > "$cache/apt/sources/trixie.sources"
  opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$cache/apt/sources"
        -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt/cache")
  apt-get "${opts[@]}" update > /dev/null
  (cd "$cache" && apt-get "${opts[@]}" download nvidia-cuda-toolkit > /dev/null 2>&1)
  dpkg -x "$cache"/nvidia-cuda-toolkit_*.deb "$cache"
  rm -f "$cache"/nvidia-cuda-toolkit_*.deb
fi
"$ptxas" --version | tail -1

dir="${1:-}"
if [ -z "$dir" ]; then
  dir=$(mktemp -d)
  dotnet build -c Release src/Cli/SageAttn.Cli.csproj -v q > /dev/null
  dotnet src/Cli/bin/Release/net10.0/sageattn.dll ptx --out "$dir" > /dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for f in "$dir"/attention_Hopper*.ptx "$dir"/varlen_attention_Hopper*.ptx; do
  # ILGPU writes PTX ISA 8.8; ptxas 12.4 reads up to 8.4, and the kernels use nothing newer.
  sed 's/^\.version 8\.8/.version 8.4/' "$f" > "$tmp/k.ptx"
  out=$("$ptxas" -arch=sm_90a -v -o "$tmp/k.cubin" "$tmp/k.ptx" 2>&1 || true)
  regs=$(grep -oE 'Used [0-9]+ registers' <<< "$out" | head -1 || true)
  if [ -z "$regs" ]; then
    # No allocation report: ptxas rejected the file; say so instead of printing an empty row.
    printf '%-50s ptxas failed: %s\n' "$(basename "$f" .ptx)" "$(grep -m1 -iE 'error|fatal' <<< "$out")"
    status=1
    continue
  fi
  spill=$(grep -oE '[0-9]+ bytes spill stores' <<< "$out" | head -1 || true)
  warn=$(grep -oE 'C75[0-9]+' <<< "$out" | sort -u | tr '\n' ' ' || true)
  printf '%-50s %-20s %-22s %s\n' "$(basename "$f" .ptx)" "$regs" "$spill" "${warn:-no C75xx}"
  [ -z "$warn" ] || status=1
done
exit $status
