# CPU image: tfjs runs on the wasm backend (XNNPACK), no libtensorflow download needed.
#   docker build -t likeness .
#   docker run -p 8080:8080 -v likeness-data:/data likeness
# GPU variant: build FROM an nvidia/cuda runtime image (CUDA 11.8 + cuDNN 8, as tfjs-node-gpu 4.x needs)
# with Node 20 installed, and keep the optional dependencies (omit `--omit=optional`): npm then installs
# @tensorflow/tfjs-node-gpu, which downloads libtensorflow at build time, and the server picks the
# `tensorflow` backend at start (`likeness info` and /healthz show which backend runs).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Optional tfjs-node packages would try to download libtensorflow; the CPU image does not need them.
RUN npm ci --omit=optional --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --omit=optional

FROM node:20-bookworm-slim
ENV NODE_ENV=production LIKENESS_DATA_DIR=/data PORT=8080 HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY models ./models
COPY demo ./demo
COPY web ./web
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/likeness"]
CMD ["serve"]
