"""The question sets of the local-documents benchmark (benchmarks/localdocs.py), and checks
that they are what docs/performance.md says of them: every question's answer is one of the
notes; a paraphrase shares no word with its answer; an exact question names something (a
number, a code, a name, a version, a date) that its answer holds and no other note does; a mixed
one shares words with its answer, but only words that other notes hold too."""

from __future__ import annotations

import re
import unicodedata

import pytest

from desktop.core.docs.search import fts_query

# The first set: short notes on everyday subjects, three on each, and a question for each that
# no other note answers: "file | question", then the note (a markdown title on a line of its own).
NOTES_TEXT = """\
boiler.txt | The heating stopped and the gauge is low, how do I top it up?
Boiler notes. The Vaillant ecoTEC boiler in the utility room should show between 1.0 and 1.5 bar
when cold. If it falls below 0.8 bar, open the filling loop under it slowly until the gauge reads
1.2 bar, then close it. Harlow Heating services it every October.
washing_machine.md | Where is the washer's filter and how often should it be cleaned?
# Washing machine
The Bosch Serie 6 takes detergent in the left drawer. Clean the pump filter behind the flap at the
bottom right every three months; put a towel down, half a litre of water comes out. Wool and silk
go on the 30 degree hand-wash programme.
smoke_alarm.txt | When do the fire detectors need replacing?
Smoke alarms: one in the hallway, one on the landing. They have sealed ten-year lithium batteries
and were fitted in March 2021, so both are replaced in March 2031. Press the test button monthly; a
chirp every 40 seconds means the unit is failing.
cabin.md | What is the wifi password at the lake house?
# The cabin at Lake Vänern
The key box code is 4471; the box hangs left of the woodshed door. Wifi network Stuga-Guest,
password pinecone-88. The sauna heater takes 45 minutes to warm up; switch it off at the wall when
you leave.
ferry.txt | What time is the last boat back on a Saturday?
Ferry to the island: the first boat leaves Grebbestad harbour at 07:15 and the last returns at
21:40 on weekdays; at weekends the last return is 18:30. Bikes travel free; cars are booked a day
ahead on the operator's website.
camping.md | What should I bring for a night in a tent?
# Camping checklist
Tent, two sleeping mats, the down sleeping bags, the gas stove and a spare canister, a headtorch
each, water filter, first-aid kit. Pitch away from the river after heavy rain and pack out all
rubbish.
sourdough.md | How hot should the oven be for the bread?
# Sourdough loaf
Mix 500 g strong white flour, 350 g water, 100 g active starter and 10 g salt. Stretch and fold
four times over two hours, shape, prove in the fridge overnight. Bake in a Dutch oven at 250 °C for
20 minutes with the lid on, then 20 minutes at 230 °C without it.
lentil_soup.txt | How long can I keep the soup in the freezer?
Red lentil soup for four. Soften an onion, two carrots and garlic in olive oil, add cumin, 250 g
red lentils and 1.2 litres of stock. Simmer 25 minutes and blend; lemon at the end lifts it. It
freezes well for three months.
pancakes.txt | How many eggs go into the batter?
Saturday pancakes: 200 g plain flour, two eggs, 300 ml milk and a pinch of salt, whisked and rested
half an hour. Cook in a hot buttered pan, a minute a side. Toppings: lemon and sugar, or
blueberries and maple syrup.
expenses.md | How much can I spend on a hotel room in Paris?
# Travel expenses
Claims go through the Concur portal within 30 days, with a photo of every receipt. Hotels are
covered up to 180 euros a night in capital cities and 130 elsewhere. Trains are second class unless
the journey is over four hours. Meals: 45 euros a day.
leave.md | Can I move unused vacation days to next year?
# Annual leave
Full-time staff get 27 days of holiday a year plus public holidays. Up to five unused days carry
over into the next year and must be taken by the end of March. Requests over two weeks need a
month's notice.
remote.txt | How many days a week may I work remotely?
Working from home: the company pays up to 400 euros once for a chair, monitor or other equipment.
Laptops use the VPN for internal systems. Home office days are agreed with the team, at most three
a week.
tomatoes.md | When can the seedlings go outside?
# Tomatoes
Sow indoors in early March and plant out after the last frost, usually mid-May. Pinch out the side
shoots of cordon varieties weekly and feed with high-potash feed once the first flowers set. Water
at the base, never the leaves, to avoid blight.
lawn.txt | When should I reseed the bald spots in the grass?
The lawn: first cut in April with the blades high, then weekly at about 4 cm. Scarify and overseed
bare patches in September while the soil is warm and the rain returns. Do not mow in a drought;
brown grass recovers.
compost.txt | Can leftover chicken go on the heap?
Compost bins by the fence: mix green waste (grass clippings, peelings) with brown waste (cardboard,
dry leaves) half and half and turn the heap every few weeks. No meat, dairy or cooked food, which
bring rats. Ready in nine to twelve months.
cat.md | What is the vet's phone number?
# Miso the cat
Miso's vet is the Riverside Veterinary Clinic, phone 01632 960 441. Her booster vaccination is due
every October and flea treatment monthly. Her microchip number is on the card in the kitchen
drawer.
dog.txt | Which foods are toxic for the puppy?
Feeding Bramble: 250 g of dry food a day in two meals, treats at most a tenth of that. Grapes,
raisins, chocolate, onions and xylitol are poisonous to dogs. She pulls on the lead near other
dogs, so use the harness.
aquarium.txt | How do I clean the fish tank filter without killing the bacteria?
The aquarium holds 120 litres at 25 °C. Change a quarter of the water weekly with conditioned tap
water, and rinse the filter sponge in old tank water, never under the tap, so the good bacteria
survive.
car.md | What pressure should the tyres be when the car is full of luggage?
# The car
The Skoda Octavia is serviced every 15,000 km or yearly at Nordby Motors. Tyre pressure 2.3 bar
front and 2.1 rear, 2.5 bar all round when fully loaded. Winter tyres go on in November and off
after Easter.
bike.txt | My gears keep jumping, what do I adjust?
Bike care: clean and lube the chain every 300 km or after a wet ride. Brake pads are worn when the
grooves are gone. If the gears skip, turn the barrel adjuster on the rear derailleur a quarter turn
anticlockwise.
insurance.txt | What is the policy number for the car insurance?
Car insurance is with Lindqvist Mutual, policy number LM-2291-0457, renewing on 1 September: fully
comprehensive with a 500 euro excess and breakdown cover across Europe. Claims go to the 24-hour
line.
mortgage.md | How much extra can we pay off the home loan each year without a fee?
# Mortgage
The fixed rate of 3.1 percent ends in June 2027, then moves to the lender's variable rate.
Overpayments of up to 10 percent of the balance a year carry no penalty. The monthly payment is
1,240 euros.
electricity.txt | When is power cheapest?
Electricity tariff: time of use, 9 cents per kWh from 00:30 to 05:30 and 31 cents otherwise. Run
the dishwasher and the washing machine on their delay timers to use the night rate.
tax.md | When is the deadline for filing the tax return?
# Tax return
The self-assessment return is due online by 31 January, with any tax owed. Keep receipts for
charity donations and the home office allowance. The accountant, Priya Shah, needs the paperwork by
mid-December.
allergy.txt | Which antihistamine do I take for pollen, and how much?
Hay fever: one cetirizine tablet, 10 mg, each morning from April to July while the grass pollen
count is high. The nasal spray is for bad days. Keep windows closed in the early evening.
running.md | How often should I buy new trainers?
# Running plan
Three runs a week: an easy 5 km on Tuesday, six 800 m intervals on Thursday, a long slow run on
Sunday growing by 1 km a week to 18 km before the half marathon. Replace the shoes every 700 km.
dentist.txt | When is my next appointment to have my teeth looked at?
Dentist: Dr. Okafor at Meadow Dental, check-ups every six months, the next on 14 November at 9:20.
The hygienist is separate, 65 euros. The sensitive toothpaste helps the lower left molar.
router.md | What should I do when the internet connection goes down?
# Home network
The router's admin page is at 192.168.1.1, password on the sticker underneath. The mesh satellite
is on the landing. If the internet drops, restart the fibre box first, then the router, two minutes
apart.
photos.txt | Where is the offsite copy of our pictures kept?
Photo backup: the phones upload to the NAS in the study every night, and the NAS copies everything
to an encrypted cloud bucket on Sundays. A second copy lives on the blue USB drive at my parents'
house.
printer.txt | Which cartridge does the printer take?
The printer is a Brother HL-L2350DW laser on the home wifi. Replacement toner is TN-2420, about
3,000 pages. For jams, open the back cover and pull the paper straight out. Double-sided printing
is the default.
"""


def notes() -> dict[str, tuple[str, str]]:
    """The first set: file name -> (text, question)."""
    found: dict[str, tuple[str, str]] = {}
    for block in re.split(r"\n(?=\S+ \| )", NOTES_TEXT.strip()):
        head, *lines = block.splitlines()
        name, question = head.split(" | ")
        title = lines.pop(0) + "\n" if lines[0].startswith("# ") else ""
        found[name] = (title + " ".join(lines), question)
    return found


# The second set: notes with near neighbours that differ in their details (invoices from one
# firm, a dishwasher's error codes, an app's releases, calls with three offices, three policies
# from one insurer, a trip's bookings, three payslips, two prescriptions, devices on one
# network), asked about in three ways. A note is its file name on a line, then its text. The
# first set's notes are in the same collection, as other material.
NEAR_NOTES_TEXT = """\
hh_2291.txt
Invoice HH-2291, Harlow Heating Ltd, 14 March 2024. Annual service of the Vaillant ecoTEC boiler
at 12 Elm Road: flue gas analysis and safety check, labour 1.5 hours. Total 148.00 GBP including
VAT, paid by card on 20 March 2024.
hh_2318.txt
Invoice HH-2318, Harlow Heating Ltd, 2 October 2024. Replaced the diverter valve (part 0020-132) of
the Vaillant ecoTEC boiler at 12 Elm Road; the taps only ran lukewarm. Parts 96.00, labour 2 hours.
Total 312.50 GBP including VAT, due by 1 November 2024.
hh_2406.txt
Invoice HH-2406, Harlow Heating Ltd, 12 January 2025. Emergency call-out on Sunday 12 January: the
pressure relief valve of the boiler at 12 Elm Road was leaking onto the floor. Valve replaced and
the system refilled to 1.2 bar. Total 226.80 GBP including VAT and the call-out fee.
hh_2455.txt
Invoice HH-2455, Harlow Heating Ltd, 18 March 2025. Annual service of the Vaillant ecoTEC boiler
at 12 Elm Road: flue gas analysis and safety check, labour 1.5 hours. Total 155.00 GBP including
VAT, paid by card on 25 March 2025.
dishwasher_e09.md
# Dishwasher error E09
The heating element or the circulation pump is faulty: the water stays cold and the dishes come
out unwashed. This needs a service engineer; note the model number on the edge of the door.
dishwasher_e15.md
# Dishwasher error E15
Water has collected in the base tray and the anti-flood float has tripped, so the drain pump runs
continuously. Turn off the tap, tilt the dishwasher forward gently to empty the tray, and call
for service if it comes back.
dishwasher_e21.md
# Dishwasher error E21
The drain pump is blocked or cannot turn. Switch off at the mains, remove the filters, scoop out
the standing water and check the pump cover below the filters for broken glass or seeds.
dishwasher_e22.md
# Dishwasher error E22
The filters are clogged. Take out the filter assembly, rinse the fine and coarse filters under
running water and refit them until they click into place.
dishwasher_e24.md
# Dishwasher error E24
Water is not draining away: the waste hose is kinked or its connection to the sink siphon is
blocked. Check the hose behind the dishwasher and clean the siphon.
dishwasher_e25.md
# Dishwasher error E25
The drain pump cover is blocked. Remove the filters, lift off the pump cover with a spoon, clear
the debris and refit the cover until it clicks.
ledgerly_4.1.3.md
# Ledgerly 4.1.3 (released 9 December 2024)
Fixes a login loop with single sign-on accounts, and the export of reports with more than 10,000
rows. No new features.
ledgerly_4.2.0.md
# Ledgerly 4.2.0 (released 3 February 2025)
Adds a dark theme, export to PDF and keyboard shortcuts for the ledger view. Requires Windows 10
or macOS 12 or later.
ledgerly_4.2.1.md
# Ledgerly 4.2.1 (released 17 February 2025)
Fixes a crash on resume from sleep on laptops with two displays, and wrong totals in the VAT
report for Irish accounts.
ledgerly_4.3.0.md
# Ledgerly 4.3.0 (released 28 April 2025)
New sync engine: changes reach other devices within seconds. Attachments up to 50 MB. The old CSV
importer is removed; use Import > Spreadsheet instead.
call_okafor.md
# Call with Chidi Okafor, 12 May 2025
Okafor (Lagos office) will send the revised price list by 30 May. We agreed to review freight
costs in the third quarter. He prefers email to phone calls.
call_nakamura.md
# Call with Yui Nakamura, 14 May 2025
Nakamura (Osaka office) will send the revised price list by 6 June. We agreed to move the annual
audit to October. She prefers calls in the morning, Japanese time.
call_lindgren.md
# Call with Erik Lindgren, 20 May 2025
Lindgren (Gothenburg office) confirmed that the warehouse lease ends on 31 August. We owe him the
signed renewal by 15 June; he is on holiday in July.
insurance_home.txt
Home insurance with Brightwater, policy BW-HM-558201: buildings and contents, renews on 1 April.
Excess 250 euros; accidental damage is included. Claims line 0800 214 552.
insurance_travel.txt
Travel insurance with Brightwater, policy BW-TR-330917: annual multi-trip for the family, Europe
only, renews on 15 June. Excess 100 euros; winter sports need an add-on.
insurance_pet.txt
Pet insurance for Miso with Brightwater, policy BW-PT-774410: lifetime cover up to 4,000 euros a
year, renews on 1 October. Excess 90 euros per condition; routine vaccinations are not covered.
flight_out.txt
Flight booking QX7RTB: TAP TP1363 from London Heathrow to Lisbon, Friday 11 July 2025, departs
07:40, arrives 10:25. Two adults, one checked bag each, seats 14A and 14B.
flight_back.txt
Flight booking MZ4KLD: TAP TP1332 from Porto to London Heathrow, Sunday 20 July 2025, departs
18:05, arrives 20:50. Two adults, one checked bag each, seats 22C and 22D.
hotel_lisbon.txt
Hotel booking 88213467: Casa do Largo, Lisbon, 11 to 15 July 2025, double room with breakfast,
142 euros a night, free cancellation until 4 July.
hotel_porto.txt
Hotel booking 88219902: Ribeira Guest House, Porto, 15 to 20 July 2025, double room, 118 euros a
night, paid at the property, non-refundable.
payslip_2025_04.txt
Payslip April 2025, Nordby Logistics AB: gross salary 42,500 SEK, income tax 11,230 SEK, pension
contribution 1,912 SEK, net pay 29,358 SEK, paid on 25 April.
payslip_2025_05.txt
Payslip May 2025, Nordby Logistics AB: gross salary 42,500 SEK plus overtime 3,400 SEK, income tax
12,610 SEK, pension contribution 2,065 SEK, net pay 31,225 SEK, paid on 23 May.
payslip_2025_06.txt
Payslip June 2025, Nordby Logistics AB: gross salary 42,500 SEK plus holiday pay 5,860 SEK, income
tax 13,540 SEK, pension contribution 2,176 SEK, net pay 32,644 SEK, paid on 25 June.
prescription_0412.txt
Prescription 2025-0412 for Anna: amoxicillin 500 mg, one capsule three times a day for 7 days,
with food. Dr Patel, Elm Road Surgery.
prescription_0519.txt
Prescription 2025-0519 for Anna: ibuprofen 400 mg, one tablet up to three times a day for 5 days,
after meals, not with other painkillers. Dr Patel, Elm Road Surgery.
dishwasher_parts.txt
Spare parts for the Bosch dishwasher SMS6ZCI48E, order 5531-0097, delivered 3 June 2025: drain
pump 00620774 at 38.90 euros, filter set 10002494 at 24.50 euros, door seal 00754866 at 19.90
euros.
router.txt
Router: FRITZ!Box 7590 in the hall cupboard, admin page at 192.168.178.1, admin password on the
sticker underneath. Guest network Elm-Guest, password orchard-57.
nas.txt
NAS: Synology DS220+ in the study at 192.168.178.20. Both laptops back up to it every night at
02:00 onto the volume Backup1; the phones' photos go to the volume Photos.
hub.txt
Home Assistant hub: Raspberry Pi 4 in the hall cupboard at 192.168.178.41, dashboard on port 8123.
It switches the porch light at sunset and turns the heating down when everyone is out.
"""

# "kind | answer | question"; kinds as in the module's docstring.
NEAR_QUESTIONS_TEXT = """\
exact | hh_2318.txt | What was invoice HH-2318 for?
exact | dishwasher_e24.md | What does E24 mean on the dishwasher?
exact | dishwasher_e21.md | The dishwasher shows E21, what should I check?
exact | ledgerly_4.1.3.md | What was fixed in Ledgerly 4.1.3?
exact | call_nakamura.md | When will Nakamura send the price list?
exact | call_lindgren.md | What does Lindgren need from us, and by when?
exact | insurance_travel.txt | What does policy BW-TR-330917 cover?
exact | flight_back.txt | What time does TP1332 leave?
exact | hotel_porto.txt | Which hotel is booking 88219902?
exact | payslip_2025_05.txt | Which month's net pay was 31,225 SEK?
exact | prescription_0519.txt | What was prescription 2025-0519 for?
exact | dishwasher_parts.txt | How much was part 00620774?
exact | nas.txt | What is at 192.168.178.20?
paraphrase | hh_2406.txt | How much did the plumber's weekend visit for a drip cost us?
paraphrase | dishwasher_e15.md | Why is there a puddle under the appliance and a motor humming?
paraphrase | dishwasher_e09.md | Why are the plates still grimy and cool at the end of a wash?
paraphrase | ledgerly_4.2.1.md | Which update stopped the program quitting when the computer wakes?
paraphrase | ledgerly_4.3.0.md | Can I still bring in comma-separated files?
paraphrase | call_okafor.md | Which contact would rather be emailed than called?
paraphrase | insurance_home.txt | Are we covered if the kids knock the TV over and break it?
paraphrase | insurance_pet.txt | Does anything pay the vet bills when the cat is ill?
paraphrase | hotel_lisbon.txt | By what date must we cancel the first stay to get our money back?
paraphrase | payslip_2025_05.txt | In which month did I get extra money for working longer hours?
paraphrase | prescription_0412.txt | How long is the course of antibiotics?
paraphrase | nas.txt | Where do the computers' copies get saved overnight?
mixed | hh_2291.txt | How much was the boiler service in 2024?
mixed | hh_2455.txt | What did the 2025 boiler service cost?
mixed | ledgerly_4.2.0.md | Which Ledgerly release made the screens darker?
mixed | call_nakamura.md | Which office is sending a new price list in June?
mixed | insurance_home.txt | What is the excess on the house cover?
mixed | insurance_travel.txt | Does our holiday insurance include skiing?
mixed | flight_back.txt | When does the flight home land?
mixed | payslip_2025_06.txt | How much tax came off in June 2025?
mixed | payslip_2025_04.txt | When was the April 2025 salary paid?
mixed | prescription_0412.txt | How many times a day do I take the antibiotic?
mixed | router.txt | What is the guest wifi password at home?
mixed | hub.txt | Which gadget in the hall cupboard runs the outdoor lights?
exact | hh_1933.txt | How much was invoice HH-1933?
mixed | payslip_2024_10.txt | What was the net pay in October 2024?
"""


def near_notes() -> dict[str, str]:
    """The second set: file name -> text (the written notes, then the made ones)."""
    found: dict[str, str] = {}
    for block in re.split(r"\n(?=\S+\.(?:txt|md)\n)", NEAR_NOTES_TEXT.strip()):
        name, *lines = block.splitlines()
        title = lines.pop(0) + "\n" if lines[0].startswith("# ") else ""
        found[name] = title + " ".join(lines)
    return found | made_notes()


MONTHS = ("January February March April May June July August September October November "
          "December").split()


def made_notes() -> dict[str, str]:
    """Documents made from one template, as firms' systems make them: the boiler's earlier yearly
    services, and the payslips of January 2024 to March 2025."""
    made = {}
    for year, number, total in ((2019, 1702, 118.0), (2020, 1845, 124.0), (2021, 1933, 129.5),
                                (2022, 2047, 136.0), (2023, 2160, 142.0)):
        made[f"hh_{number}.txt"] = (
            f"Invoice HH-{number}, Harlow Heating Ltd, {year % 7 + 9} March {year}. Annual service "
            "of the Vaillant ecoTEC boiler at 12 Elm Road: flue gas analysis and safety check, "
            f"labour 1.5 hours. Total {total:.2f} GBP including VAT, paid by card on "
            f"{year % 7 + 15} March {year}.")
    for year, first, last in ((2024, 1, 12), (2025, 1, 3)):
        gross = 40_000 if year == 2024 else 42_500
        tax, pension = round(gross * 0.26424), round(gross * 0.045)
        for month in range(first, last + 1):
            made[f"payslip_{year}_{month:02d}.txt"] = (
                f"Payslip {MONTHS[month - 1]} {year}, Nordby Logistics AB: gross salary "
                f"{gross:,} SEK, income tax {tax:,} SEK, pension contribution {pension:,} SEK, "
                f"net pay {gross - tax - pension:,} SEK, paid on 25 {MONTHS[month - 1]}.")
    return made


def near_questions() -> list[tuple[str, str, str]]:
    """The second set's questions: (kind, answer's file name, question)."""
    return [tuple(line.split(" | ")) for line in NEAR_QUESTIONS_TEXT.strip().splitlines()]


def _tokens(text: str) -> list[str]:
    # As the index's tokenizer (unicode61, diacritics removed) splits and folds text.
    bare = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return re.findall(r"[^\W_]+", bare.lower())


def _searched(question: str) -> list[list[str]]:
    """The words (a code or a number: a phrase of several tokens) that the search looks for."""
    match = fts_query(question) or ""
    return [_tokens(word) for word in match[1:-1].split('" OR "')]


def _holds(text: str, phrase: list[str]) -> bool:
    tokens = _tokens(text)
    return any(tokens[at:at + len(phrase)] == phrase for at in range(len(tokens)))


NOTES = notes()
NEAR_NOTES = near_notes()
EVERY_NOTE = {name: text for name, (text, _) in NOTES.items()} | NEAR_NOTES


def test_the_sets_are_whole() -> None:
    assert len(NOTES) == 30 and len(NEAR_NOTES) == 33 + 20
    assert not set(NOTES) & set(NEAR_NOTES)
    questions = near_questions()
    assert len({question for _, _, question in questions}) == len(questions)
    assert {kind for kind, _, _ in questions} == {"exact", "paraphrase", "mixed"}
    assert all(answer in NEAR_NOTES for _, answer, _ in questions)


@pytest.mark.parametrize(("kind", "answer", "question"), near_questions())
def test_each_question_is_of_its_kind(kind: str, answer: str, question: str) -> None:
    shared = [phrase for phrase in _searched(question) if _holds(EVERY_NOTE[answer], phrase)]
    elsewhere = [phrase for phrase in shared
                 if any(_holds(text, phrase) for name, text in EVERY_NOTE.items()
                        if name != answer)]
    if kind == "paraphrase":
        assert shared == []
    elif kind == "exact":
        assert len(elsewhere) < len(shared)  # something only the answer holds
    else:
        assert shared and elsewhere == shared

