"""A small built-in English vocabulary for keys (``adjective-noun``) and for the common
words list, so samples need no download.

RULER draws from the ``wonderwords`` package lists (thousands of words); these are
shorter, which bounds how long a ``cwe`` prompt can get (pass ``words=`` for more).
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


ADJECTIVES: tuple[str, ...] = _words("""
able ancient angry bold brave bright brisk broad calm careful cheerful clever cold cozy
crisp curious damp dark deep eager early empty faint fancy fast fierce flat fond fresh
friendly gentle giant glad golden grand gray green happy hard heavy hidden hollow humble
icy jolly keen kind large late lazy light little lively lonely loud lucky mellow mighty
modern narrow neat noble odd old pale plain polite proud quick quiet rapid rare rich rough
round royal rusty sad salty sharp shiny short shy silent silver simple sleepy slow small
smooth soft solid sour spicy steep sticky strange strong sunny sweet swift tall tame tender
thin tidy tiny vast warm wary weak wet wide wild wise young zealous
""")

NOUNS: tuple[str, ...] = _words("""
acorn anchor apple arrow badge bakery balloon banjo barn basket beach beacon bell bicycle
blanket boat bottle bridge brook bucket butter cabin cactus camera candle canoe canyon
carpet castle cellar chair cherry circle cliff clock cloud coffee comet compass cottage
crayon crown curtain cushion daisy desert diamond dolphin door dragon drum eagle engine
falcon feather fence fiddle field flame flute forest fountain garden garlic glacier globe
glove harbor harp helmet hill honey island jacket jungle kettle kite ladder lake lantern
lemon library lily lizard magnet maple marble meadow mirror mountain notebook ocean orchard
otter owl paddle palace parrot pebble pencil pepper piano pillow planet pocket pond potato
pumpkin puzzle quilt rabbit radio river rocket saddle salmon sandal scarf shadow shell ship
shovel spoon squirrel stable statue stone tablet teapot temple thunder tiger tower tractor
trumpet tunnel turtle umbrella valley violin wagon wallet whistle willow window wolf zebra
""")

VERBS: tuple[str, ...] = _words("""
admire arrive bake balance bounce breathe build carry chase climb collect cook count crawl
dance deliver discover dive draw dream drift explore fetch float fold follow gather glide
grow guard hammer hike hum hunt imagine invent jog juggle jump knit laugh launch lift listen
march measure melt mend mix observe offer paint plant polish pour practice print pull push
question race read relax repair rescue ride roll row scatter sculpt search sew sing sketch
skip sleep slide sort sparkle spin splash sprint stack stir stretch study swim swing teach
travel tumble twist visit wander wash weave whisper wiggle write yawn
""")

# The common-words vocabulary, as RULER builds it: nouns, adjectives and verbs, deduplicated
# and sorted (the per-sample RNG shuffles it).
COMMON_WORDS: tuple[str, ...] = tuple(sorted(set(NOUNS + ADJECTIVES + VERBS)))
