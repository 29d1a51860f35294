# CPU image: tfjs runs on the wasm backend, its convolutions on oneDNN (Debian's libdnnl, through the
# native addon native/dnnl-conv), no libtensorflow download needed.
#   docker build -t likeness .
#   docker run -p 8080:8080 -v likeness-data:/data likeness
# GPU variant: build FROM an nvidia/cuda runtime image (CUDA 11.8 + cuDNN 8, as tfjs-node-gpu 4.x needs)
# with Node 20 installed, and keep the optional dependencies (omit `--omit=optional`): npm then installs
# @tensorflow/tfjs-node-gpu, which downloads libtensorflow at build time, and the server picks the
# `tensorflow` backend at start (`likeness info` and /healthz show which backend runs).
FROM node:20-bookworm-slim AS build
WORKDIR /app
# The oneDNN addon compiles against libdnnl-dev with node-gyp (python3, make, g++).
RUN apt-get update && apt-get install -y --no-install-recommends libdnnl-dev python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY native ./native
# The optional tfjs-node packages would try to download libtensorflow; the CPU image does not need them,
# so they are left out by name and the optional oneDNN addon is kept.
RUN npm ci --no-audit --no-fund --ignore-scripts \
 && npm rebuild hnswlib-node better-sqlite3 likeness-dnnl-conv \
 && node -e "require('likeness-dnnl-conv')"
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev && rm -rf node_modules/@tensorflow/tfjs-node node_modules/@tensorflow/tfjs-node-gpu

FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libdnnl2 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production LIKENESS_DATA_DIR=/data PORT=8080 HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/native ./native
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
