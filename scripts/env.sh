# Sourced by ./tune4j, ./run-tests and .ci/run: selects a JDK 25 (JAVA_HOME if it is one, else /usr/lib/jvm/*25*).
tune4j_find_jdk() {
  local cand v
  for cand in "${JAVA_HOME:-}" /usr/lib/jvm/*25* /usr/lib/jvm/*-25-* /opt/java/*25* "$HOME"/.sdkman/candidates/java/25*; do
    [ -n "$cand" ] && [ -x "$cand/bin/java" ] || continue
    # the JDK's release file names its version without starting a JVM; ask java itself only when it is missing
    if [ -f "$cand/release" ]; then
      v=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$cand/release" | head -n1)
    else
      v=$("$cand/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
    fi
    if [ "$v" = "25" ]; then
      export JAVA_HOME="$cand"
      export PATH="$JAVA_HOME/bin:$PATH"
      return 0
    fi
  done
  echo "tune4j: no JDK 25 found (looked at JAVA_HOME and /usr/lib/jvm/*25*). Install Temurin 25 or set JAVA_HOME." >&2
  return 1
}

tune4j_require_maven() {
  if ! command -v mvn >/dev/null 2>&1; then
    echo "tune4j: Maven (mvn) is needed to build; install it (Debian: apt-get install maven)." >&2
    return 1
  fi
}
