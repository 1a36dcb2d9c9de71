"""GPU readings: NVML (``nvidia-ml-py``) first, GPUtil (which runs ``nvidia-smi``) as fallback.

``GpuReader().read()`` returns ``{"devices": [...], "source": "nvml"|"gputil"}`` or
``{"devices": None, "source": None, "reason": "no GPU", "detail": ...}``. Each device dict
carries its own ``source``. The backend is chosen once (GPUs do not appear at run time);
a backend that fails later is reported as a reason, never as invented numbers.
"""

from __future__ import annotations

import shutil
from typing import Any

__all__ = ["GpuReader"]


class GpuReader:
    """Chooses NVML or GPUtil at construction and reads every device on ``read()``."""

    def __init__(self) -> None:
        self.backend: str | None = None
        self.detail = ""
        self._nvml: Any = None
        self._init()

    def _init(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            if pynvml.nvmlDeviceGetCount() > 0:
                self._nvml, self.backend = pynvml, "nvml"
                return
            self.detail = "NVML: 0 devices"
        except Exception as exc:  # noqa: BLE001 - any NVML failure means "not via NVML"
            self.detail = f"NVML: {type(exc).__name__}: {exc}"
        if shutil.which("nvidia-smi") is None:
            self.detail += "; GPUtil: nvidia-smi not found"
            return
        try:
            import GPUtil

            if GPUtil.getGPUs():
                self.backend = "gputil"
                return
            self.detail += "; GPUtil: 0 devices"
        except Exception as exc:  # noqa: BLE001
            self.detail += f"; GPUtil: {type(exc).__name__}: {exc}"

    def read(self) -> dict[str, Any]:
        """Every GPU's utilisation, VRAM and temperature, or null with a reason."""
        if self.backend is None:
            return {"devices": None, "source": None, "reason": "no GPU", "detail": self.detail}
        try:
            devices = self._read_nvml() if self.backend == "nvml" else self._read_gputil()
        except Exception as exc:  # noqa: BLE001 - report, never invent
            return {"devices": None, "source": self.backend, "reason": "GPU read failed",
                    "detail": f"{type(exc).__name__}: {exc}"}
        return {"devices": devices, "source": self.backend}

    def _read_nvml(self) -> list[dict[str, Any]]:
        nv = self._nvml
        out = []
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            util = nv.nvmlDeviceGetUtilizationRates(h)
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            name = nv.nvmlDeviceGetName(h)
            out.append(_device(i, name.decode() if isinstance(name, bytes) else name,
                               float(util.gpu), mem.used / 2**20, mem.total / 2**20,
                               _nvml_temp(nv, h), "nvml"))
        return out

    @staticmethod
    def _read_gputil() -> list[dict[str, Any]]:
        import GPUtil

        return [_device(g.id, g.name, g.load * 100.0, float(g.memoryUsed),
                        float(g.memoryTotal), g.temperature, "gputil")
                for g in GPUtil.getGPUs()]

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001, S110 - shutting down anyway
                pass
            self._nvml = None


def _nvml_temp(nv: Any, handle: Any) -> float | None:
    try:
        return float(nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU))
    except Exception:  # noqa: BLE001 - some boards report no temperature
        return None


def _device(index: int, name: str, util: float, used_mb: float, total_mb: float,
            temp: float | None, source: str) -> dict[str, Any]:
    return {"index": index, "name": name, "utilization_percent": util,
            "memory_used_mb": round(used_mb, 1), "memory_total_mb": round(total_mb, 1),
            "vram_percent": round(100.0 * used_mb / total_mb, 2) if total_mb else None,
            "temperature_c": temp, "source": source}
