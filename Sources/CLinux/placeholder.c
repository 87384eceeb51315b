/* CLinux: owned by the container launcher (see Sources/Container). */
