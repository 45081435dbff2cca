#!/usr/bin/env bash
# Build .gpu/: what the device machine (python3 3.12 with CUDA torch, transformers and the scientific stack; no
# network) needs to run bench/gpu_device_run.sh. From the project root after `make install`:
#   bash bench/gpu_bundle.sh        (about 45 MB; .gpu/ is kept out of git through .git/info/exclude)
#   site.tar.xz     the pure-Python notebook and data packages (../shared/gpu/make_bundle.sh)
#   extra.tar.xz    what that leaves out but imports need: _plotly_utils, narwhals, pygments, the dist-infos
#   cp312.tar.xz    rasterio (GDAL inside) and its pure-Python dependencies, as wheels for CPython 3.12,
#                   from the package index: kit.canopy reads GeoTIFFs with it
# SmolLM2's data package (94 MB) cannot travel (64 MiB carry limit): its tests and notebook 05's cpu budget
# are left out there, and the check says so.
set -eu
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p .gpu
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >> .git/info/exclude
bash ../shared/gpu/make_bundle.sh .gpu/site.tar.xz
sp=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
extra=""
for n in _plotly_utils narwhals pygments; do [ -e "$sp/$n" ] && extra="$extra $n"; done
for d in "$sp"/{comm,gguf,ipython,ipywidgets,mlxtend,mnist1d,plotly,traitlets,narwhals}-*.dist-info; do
  [ -e "$d" ] && extra="$extra $(basename "$d")"
done
tar -cJf .gpu/extra.tar.xz -C "$sp" $extra
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
pins=""
for p in rasterio affine cligj click-plugins click attrs certifi pyparsing; do pins="$pins $p==$(version $p)"; done
"$PY" -m pip download --quiet --only-binary=:all: --no-deps --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$wheels/whl" $pins
mkdir "$wheels/site"
for w in "$wheels"/whl/*.whl; do "$PY" -m zipfile -e "$w" "$wheels/site"; done
tar -cJf .gpu/cp312.tar.xz -C "$wheels/site" .
du -ch .gpu/*.tar.xz
