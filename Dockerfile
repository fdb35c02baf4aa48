# meshlane's two images, from one builder:
#
#   docker build --target loader  -t ghcr.io/meshlane/loader:0.1.0  .
#   docker build --target webhook -t ghcr.io/meshlane/webhook:0.1.0 .
#
# The builder runs the very commands CI runs through scripts/bootstrap.sh (npm ci,
# then npm run build: the BPF object and the TypeScript), so what CI tested is what
# the images hold. test/manifests/images.test.ts keeps the two in step and checks that
# the runtime layout below starts both commands.

FROM node:20-bookworm AS builder
# What `npm run build` needs besides Node (gcc and make come with this image):
# clang and llvm-strip for bpf/Makefile, the BPF and UAPI headers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev linux-libc-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY . .
RUN npm run --silent build
# The runtime stages take production dependencies only.
RUN npm prune --omit=dev --no-audit --no-fund

# What both commands share: Node, production dependencies, the registry contract and
# the mesh knowledge it reads older documents with. package.json marks dist/ as ES modules.
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=builder /src/package.json ./package.json
COPY --from=builder /src/node_modules ./node_modules
COPY --from=builder /src/dist/registry ./dist/registry
COPY --from=builder /src/dist/mesh ./dist/mesh

FROM runtime AS webhook
COPY --from=builder /src/dist/certs ./dist/certs
COPY --from=builder /src/dist/webhook ./dist/webhook
RUN chmod 755 /app/dist/webhook/cli.js \
 && ln -s /app/dist/webhook/cli.js /usr/local/bin/meshlane-webhook
# Numeric, so that runAsNonRoot can verify it; nothing in the image is writable to it.
USER 65532:65532
ENTRYPOINT ["meshlane-webhook"]
CMD ["serve"]

FROM runtime AS loader
# libbpf1: the loader's FFI target (libbpf.so.1). mount: attach mounts bpffs where
# a node has none (which needs CAP_SYS_ADMIN: run by hand, not in the DaemonSet).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 mount \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /src/dist/loader ./dist/loader
# The loader looks for bpf/meshlane.bpf.o two levels above dist/loader/object.js.
COPY --from=builder /src/bpf/meshlane.bpf.o ./bpf/meshlane.bpf.o
RUN chmod 755 /app/dist/loader/cli.js \
 && ln -s /app/dist/loader/cli.js /usr/local/bin/meshlane-loader
# Root: the pins on bpffs and the cgroup directories belong to root; the DaemonSet
# grants only CAP_BPF and CAP_NET_ADMIN on top.
ENTRYPOINT ["meshlane-loader"]
CMD ["--help"]
