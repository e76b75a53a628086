"""VQAv2's answer processing, as the official evaluation applies it before comparing answers.

The steps (GT-Vision-Lab/VQA, PythonEvaluationTools/vqaEvaluation/vqaEval.py at a013f00):
1. `clean`: newlines and tabs become spaces; surrounding whitespace goes.
2. `punctuation`: each of PUNCTUATION is deleted when the text has it beside a space, or when the
   text has a comma between two digits anywhere ("1,000"); otherwise it becomes a space. Then a
   period not followed by a digit is deleted, at most 32 of them: the official code passes
   `re.UNICODE` (32) where `re.sub` takes its count, and vlmkit keeps that limit so its values
   stay identical on any input.
3. `digits_articles`: lower-cased and split on whitespace; number words zero to ten ("none" too)
   become digits, the articles a/an/the are dropped, and apostrophe-less contractions get their
   apostrophe back ("dont" -> "don't"), words joined by single spaces.

Whether steps 2 and 3 run at all depends on the annotators (see `vqa.VqaAccuracy`).
"""

from __future__ import annotations

import re

PUNCTUATION = tuple(';/[]"{}()=+\\_-><@`,?!')
"""The official list. Not on it, so kept: `:` `'` `*` `#` `&` `%` `$`; `.` has its own rule."""
COMMA_BETWEEN_DIGITS = re.compile(r"\d,\d")
COMMAS_BETWEEN_DIGITS = re.compile(r"\d,+\d")
"""lmms-eval's (EvalAI's) version of the rule: one or more commas between digits."""
_PERIOD = re.compile(r"\.(?!\d)")
# The official pattern is "(?!<=\d)(\.)(?!\d)": its first group is a look-ahead (not the
# look-behind it looks like), which can never see "<=" where a period stands, so only the
# "(?!\d)" part decides.
_PERIOD_LIMIT = 32
NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES = frozenset({"a", "an", "the"})

# The official contraction table, as `written>restored` pairs (quirks included: "somebody'd"
# loses its apostrophe, "let's" and "she's" map to themselves). Only whole words are looked up.
_CONTRACTION_PAIRS = """
    aint>ain't arent>aren't cant>can't couldve>could've couldnt>couldn't couldn'tve>couldn't've
    couldnt've>couldn't've didnt>didn't doesnt>doesn't dont>don't hadnt>hadn't
    hadnt've>hadn't've hadn'tve>hadn't've hasnt>hasn't havent>haven't hed>he'd hed've>he'd've
    he'dve>he'd've hes>he's howd>how'd howll>how'll hows>how's Id've>I'd've I'dve>I'd've Im>I'm
    Ive>I've isnt>isn't itd>it'd itd've>it'd've it'dve>it'd've itll>it'll let's>let's maam>ma'am
    mightnt>mightn't mightnt've>mightn't've mightn'tve>mightn't've mightve>might've
    mustnt>mustn't mustve>must've neednt>needn't notve>not've oclock>o'clock oughtnt>oughtn't
    ow's'at>'ow's'at 'ows'at>'ow's'at 'ow'sat>'ow's'at shant>shan't shed've>she'd've
    she'dve>she'd've she's>she's shouldve>should've shouldnt>shouldn't shouldnt've>shouldn't've
    shouldn'tve>shouldn't've somebody'd>somebodyd somebodyd've>somebody'd've
    somebody'dve>somebody'd've somebodyll>somebody'll somebodys>somebody's someoned>someone'd
    someoned've>someone'd've someone'dve>someone'd've someonell>someone'll someones>someone's
    somethingd>something'd somethingd've>something'd've something'dve>something'd've
    somethingll>something'll thats>that's thered>there'd thered've>there'd've
    there'dve>there'd've therere>there're theres>there's theyd>they'd theyd've>they'd've
    they'dve>they'd've theyll>they'll theyre>they're theyve>they've twas>'twas wasnt>wasn't
    wed've>we'd've we'dve>we'd've weve>we've werent>weren't whatll>what'll whatre>what're
    whats>what's whatve>what've whens>when's whered>where'd wheres>where's whereve>where've
    whod>who'd whod've>who'd've who'dve>who'd've wholl>who'll whos>who's whove>who've
    whyll>why'll whyre>why're whys>why's wont>won't wouldve>would've wouldnt>wouldn't
    wouldnt've>wouldn't've wouldn'tve>wouldn't've yall>y'all yall'll>y'all'll y'allll>y'all'll
    yall'd've>y'all'd've y'alld've>y'all'd've y'all'dve>y'all'd've youd>you'd youd've>you'd've
    you'dve>you'd've youll>you'll youre>you're youve>you've
"""
CONTRACTIONS = dict(pair.split(">") for pair in _CONTRACTION_PAIRS.split())


def clean(text: str) -> str:
    """Step 1: newlines and tabs to spaces, outer whitespace stripped."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def punctuation(text: str, commas: re.Pattern[str] = COMMA_BETWEEN_DIGITS) -> str:
    """Step 2: the official punctuation rule (see the module docstring); `commas` is the
    pattern whose presence makes every mark deleted rather than spaced."""
    delete = commas.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        if mark not in text:  # the official loop tests and replaces every mark; same result
            continue
        gone = delete or f"{mark} " in text or f" {mark}" in text
        out = out.replace(mark, "" if gone else " ")
    return _PERIOD.sub("", out, count=_PERIOD_LIMIT)


def digits_articles(text: str) -> str:
    """Step 3: number words to digits, articles dropped, contractions restored."""
    words = []
    for word in text.lower().split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            words.append(CONTRACTIONS.get(word, word))
    return " ".join(words)


def processed(text: str, commas: re.Pattern[str] = COMMA_BETWEEN_DIGITS) -> str:
    """Steps 2 and 3 on a cleaned answer: what the official code compares when annotators
    disagree."""
    return digits_articles(punctuation(text, commas))
