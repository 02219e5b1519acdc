"""CarePill Voice client for the Pi.

    from carepill_voice import text_to_speech_django
    text_to_speech_django("약 드실 시간입니다")   # True if something was spoken; never raises
"""

from carepill_voice.client import Client, Outcome
from carepill_voice.config import Config, load_config
from carepill_voice.speak import text_to_speech_django

__all__ = ["Client", "Config", "Outcome", "load_config", "text_to_speech_django"]
__version__ = "0.1.0"
