# Shared by the PostgreSQL benchmarks (sourced, not run): sets
#   root   the repository
#   bin    the release build of crates/exhunt-serve/examples/serve-bench (built when missing,
#          into $CARGO_TARGET_DIR or the repository's target folder)
#   pgbin  the newest PostgreSQL server binaries of this Debian machine (exits when none)
#   as_pg  the command prefix that runs the server as `postgres` when we are root (PostgreSQL
#          refuses to run as root), empty otherwise
#   work   a new folder under /tmp named after $1 (mode 755: the server reads it as `postgres`)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=$target/release/examples/serve-bench
if [ ! -x "$bin" ]; then
  (cd "$root" && cargo build --release -p exhunt-serve --example serve-bench)
fi
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "no PostgreSQL server binaries (Debian: apt-get install postgresql)"; exit 1; }
as_pg=()
[ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)
work=$(mktemp -d "/tmp/$1.XXXXXX")
chmod 755 "$work"
