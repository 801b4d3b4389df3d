"""Make the bundled CIFAR-10 test subset: the first 100 test images (by file name) of each class,
copied byte for byte (no re-encoding) from the shared JPEG archive into a small tar.

    python hostlink/data/make_cifar10_subset.py ../shared/data/cifar10-jpeg.tar.xz
"""
import io
import sys
import tarfile
from pathlib import Path

PER_CLASS = 100


def main(src: str) -> None:
    members: dict[str, dict[str, bytes]] = {}
    with tarfile.open(src, "r|*") as tar:
        for m in tar:
            parts = m.name.split("/")
            if m.isfile() and len(parts) == 4 and parts[1] == "test":
                members.setdefault(parts[2], {})[parts[3]] = tar.extractfile(m).read()
    out = Path(__file__).with_name("cifar10-test-subset.tar")
    with tarfile.open(out, "w") as tar:
        for cls in sorted(members):
            for name in sorted(members[cls])[:PER_CLASS]:
                data = members[cls][name]
                info = tarfile.TarInfo(f"cifar10-test-subset/test/{cls}/{name}")
                info.size = len(data)
                info.mtime = 0
                tar.addfile(info, io.BytesIO(data))
    print(out, out.stat().st_size)


if __name__ == "__main__":
    main(sys.argv[1])
