# churnguard in a container: `docker build -t churnguard .` then `docker run --rm churnguard`
# runs the demo; `docker run --rm -v "$PWD:/work" -w /work churnguard score --config ...`
# runs any command on your own data.
FROM python:3.11-slim
# LightGBM needs the OpenMP runtime
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/churnguard
COPY pyproject.toml README.md ./
COPY src ./src
COPY pipelines ./pipelines
RUN pip install --no-cache-dir . && useradd --create-home churnguard
USER churnguard
ENTRYPOINT ["churnguard"]
CMD ["demo", "--out", "/tmp/demo"]
