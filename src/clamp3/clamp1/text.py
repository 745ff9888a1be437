"""Transliteration to ASCII exactly as CLaMP 1 did it, and the reference's reading of text key files.

CLaMP 1 pins Unidecode 1.3.4. Later releases (1.3.6 to 1.4.0 were compared code point by code point)
transliterate 40 characters differently, for example ``'½'``: ``' 1/2 '`` in 1.3.4, ``' 1/2'`` later.
:func:`ascii_text` maps those 40 characters to their 1.3.4 strings first, then lets the installed
Unidecode do the rest; as Unidecode works character by character, the result is that of 1.3.4.
This is for CLaMP 1 only; CLaMP 3 uses the installed Unidecode as it is.
"""

from __future__ import annotations

from types import MappingProxyType

from unidecode import unidecode

UNIDECODE_134_OVERRIDES = MappingProxyType(
    {
        0x00BC: " 1/4 ",  # VULGAR FRACTION ONE QUARTER
        0x00BD: " 1/2 ",  # VULGAR FRACTION ONE HALF
        0x00BE: " 3/4 ",  # VULGAR FRACTION THREE QUARTERS
        0x014A: "ng",  # LATIN CAPITAL LETTER ENG
        0x014B: "NG",  # LATIN SMALL LETTER ENG
        0x1E9E: "Ss",  # LATIN CAPITAL LETTER SHARP S
        0x2103: "",  # DEGREE CELSIUS
        0x2109: "",  # DEGREE FAHRENHEIT
        0x211F: "",  # RESPONSE
        0x2123: "",  # VERSICLE
        0x214D: "",  # AKTIESELSKAB
        0x2654: "",  # WHITE CHESS KING
        0x2655: "",  # WHITE CHESS QUEEN
        0x2656: "",  # WHITE CHESS ROOK
        0x2657: "",  # WHITE CHESS BISHOP
        0x2658: "",  # WHITE CHESS KNIGHT
        0x2659: "",  # WHITE CHESS PAWN
        0x265A: "",  # BLACK CHESS KING
        0x265B: "",  # BLACK CHESS QUEEN
        0x265C: "",  # BLACK CHESS ROOK
        0x265D: "",  # BLACK CHESS BISHOP
        0x265E: "",  # BLACK CHESS KNIGHT
        0x265F: "",  # BLACK CHESS PAWN
        0x2660: "",  # BLACK SPADE SUIT
        0x2661: "",  # WHITE HEART SUIT
        0x2662: "",  # WHITE DIAMOND SUIT
        0x2663: "",  # BLACK CLUB SUIT
        0x2664: "",  # WHITE SPADE SUIT
        0x2665: "",  # BLACK HEART SUIT
        0x2666: "",  # BLACK DIAMOND SUIT
        0x2667: "",  # WHITE CLUB SUIT
        0x30A0: "",  # KATAKANA-HIRAGANA DOUBLE HYPHEN
        0x30FB: "",  # KATAKANA MIDDLE DOT
        0x30FC: "",  # KATAKANA-HIRAGANA PROLONGED SOUND MARK
        0x1D6D5: "tai",  # MATHEMATICAL BOLD SMALL TAU
        0x1F16A: "",  # RAISED MC SIGN
        0x1F16B: "",  # RAISED MD SIGN
        0x1F16C: "",  # RAISED MR SIGN
        0x1F19C: "[2nc-Scr]",  # SQUARED SECOND SCREEN
        0x1F1A9: "[Loss-less]",  # SQUARED LOSSLESS
    }
)
"""Code point -> Unidecode 1.3.4 transliteration, for every character later releases changed."""


def ascii_text(text: str) -> str:
    """``unidecode(text)`` as Unidecode 1.3.4 (CLaMP 1's pin) computes it."""
    return unidecode(text.translate(UNIDECODE_134_OVERRIDES))


def text_keys(content: str) -> list[str]:
    """The keys of a text key file as the reference reads them: transliterated, one per line,
    each stripped, empty lines dropped (duplicates are kept)."""
    return [line.strip() for line in ascii_text(content).split("\n") if line.strip()]
