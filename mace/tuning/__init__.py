"""The auto-tuner: per op instance, time launch parameters and kernel variants on this device,
keep the best with its evidence in the program cache's tuning section (under the device's
fingerprint), and apply the records at engine init.

    from mace.tuning import tune
    result = tune(engine, mode="normal", budget=60)
"""
from mace.tuning.records import tuning_key
from mace.tuning.tuner import MODES, TuneResult, tune

__all__ = ["tune", "TuneResult", "MODES", "tuning_key"]
