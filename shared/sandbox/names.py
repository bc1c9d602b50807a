"""Person names and places for the synthetic sandbox population.

Drawn from many languages on purpose: family-name searches should return a handful of patients
out of thousands, and accented spellings ("Muñoz", "Nguyễn", "Dvořák") exercise the sandbox's
accent-insensitive name search. Every name is invented for test data; any likeness is chance.
"""

from __future__ import annotations

FAMILY_NAMES: tuple[str, ...] = (
    # English, Irish, Scottish
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson",
    "Taylor", "Thomas", "Moore", "Jackson", "Thompson", "White", "Harris", "Clark", "Lewis",
    "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Hill", "Green", "Adams",
    "Baker", "Nelson", "Carter", "Mitchell", "Roberts", "Turner", "Phillips", "Campbell",
    "Parker", "Evans", "Edwards", "Collins", "Stewart", "Morris", "Rogers", "Reed", "Cook",
    "Morgan", "Bell", "Murphy", "Bailey", "Cooper", "Richardson", "Cox", "Howard", "Ward",
    "Peterson", "Gray", "James", "Watson", "Brooks", "Kelly", "Sanders", "Price", "Bennett",
    "Wood", "Barnes", "Ross", "Henderson", "Coleman", "Jenkins", "Perry", "Powell", "Long",
    "Patterson", "Hughes", "Washington", "Butler", "Simmons", "Foster", "Bryant", "Alexander",
    "Russell", "Griffin", "Hayes", "Myers", "Ford", "Hamilton", "Graham", "Sullivan", "Wallace",
    "West", "Cole", "Hunt", "Black", "Porter", "Webb", "Tucker", "Fletcher", "Hawkins", "Dixon",
    "Palmer", "Holmes", "Fisher", "Harper", "Lane", "Marsh", "Shaw", "Chapman", "Payne",
    "Pearce", "Lawson", "Hart", "Barker", "Spencer", "Knight", "Stone", "Burke", "Dunn", "Fox",
    "Holland", "Weaver", "Wells", "Rhodes", "Bishop", "Chambers", "Blake", "Sutton", "Quinn",
    "Gibson", "Mason", "Pratt", "Ramsey", "Todd", "O'Brien", "O'Connor", "O'Neill", "McCarthy",
    "Byrne", "Walsh", "Doyle", "Kennedy", "Gallagher", "Brennan", "Fitzgerald", "MacDonald",
    "MacLeod", "Ferguson", "Fraser", "Sinclair", "Douglas", "Kerr", "Lynch", "Flanagan",
    "Smith-Jones", "Hughes-Whitfield",
    # German, Dutch, Nordic, Finnish
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Wagner", "Becker", "Schulz",
    "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
    "Schwarz", "Zimmermann", "Braun", "Krüger", "Hartmann", "Lange", "Vogel", "Jäger", "Groß",
    "de Vries", "van Dijk", "Bakker", "Janssen", "Visser", "Smit", "Meijer", "de Jong",
    "van den Berg", "Mulder", "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson",
    "Larsson", "Olsson", "Persson", "Lindqvist", "Håkansson", "Sjöberg", "Hansen", "Nielsen",
    "Pedersen", "Kristensen", "Jørgensen", "Østergaard", "Haugen", "Solberg", "Virtanen",
    "Korhonen", "Mäkinen", "Nieminen", "Järvinen",
    # French, Belgian, Québécois
    "Bernard", "Dubois", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau", "Simon",
    "Laurent", "Lefèvre", "Michel", "Fournier", "Girard", "Bonnet", "Dupont", "Fontaine",
    "Rousseau", "Vincent", "Muller", "Lefebvre", "Faure", "Mercier", "Blanc", "Guérin",
    "Boyer", "Garnier", "Chevalier", "François", "Legrand", "Gauthier", "Perrin", "Morel",
    "Bélanger", "Côté", "Gagnon", "Tremblay", "Bouchard", "Pelletier", "Lévesque",
    # Italian
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
    "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo",
    "Lombardi", "Moretti", "Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi", "Caruso",
    "Ferrara", "Galli", "Martini", "Leone", "Longo", "Gentile", "Martinelli", "Vitale", "Serra",
    "Coppola", "De Santis", "D'Angelo", "Marchetti",
    # Spanish, Latin American
    "García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez",
    "Gómez", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero",
    "Alonso", "Gutiérrez", "Navarro", "Torres", "Domínguez", "Vázquez", "Ramos", "Gil",
    "Ramírez", "Serrano", "Blanco", "Molina", "Morales", "Suárez", "Ortega", "Delgado",
    "Castro", "Ortiz", "Rubio", "Marín", "Sanz", "Núñez", "Iglesias", "Medina", "Garrido",
    "Cortés", "Castillo", "Santos", "Lozano", "Guerrero", "Cano", "Prieto", "Méndez", "Cruz",
    "Calvo", "Gallego", "Vidal", "León", "Márquez", "Herrera", "Peña", "Flores", "Cabrera",
    "Campos", "Vega", "Fuentes", "Carrasco", "Caballero", "Reyes", "Nieto", "Aguilar",
    "Pascual", "Santana", "Herrero", "Lorenzo", "Montero", "Hidalgo", "Giménez", "Ibáñez",
    "Ferrer", "Durán", "Santiago", "Benítez", "Mora", "Vargas", "Arias", "Carmona", "Crespo",
    "Román", "Pastor", "Soto", "Sáez", "Velasco", "Moya", "Soler", "Parra", "Esteban", "Bravo",
    "Gallardo", "Rojas", "Mendoza", "Silva", "Rivera", "Acosta", "Espinoza", "Sandoval",
    "Salazar", "Contreras", "Figueroa", "Valenzuela", "Quintero", "Villalobos", "Zamora",
    "García-López",
    # Portuguese, Brazilian
    "Oliveira", "Souza", "Pereira", "Lima", "Carvalho", "Ferreira", "Rodrigues", "Almeida",
    "Gomes", "Ribeiro", "Martins", "Araújo", "Barbosa", "Cardoso", "Rocha", "Dias",
    "Nascimento", "Moreira", "Teixeira", "Correia", "Gonçalves", "Monteiro", "Azevedo",
    "Pinto", "Conceição", "Magalhães", "Simões",
    # Polish, Czech, Slavic, Hungarian, Romanian
    "Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski",
    "Zieliński", "Szymański", "Woźniak", "Dąbrowski", "Kozłowski", "Jankowski", "Mazur",
    "Kwiatkowski", "Krawczyk", "Piotrowski", "Grabowski", "Pawłowski", "Novák", "Svoboda",
    "Novotný", "Dvořák", "Černý", "Procházka", "Kučera", "Veselý", "Horák", "Němec", "Ivanov",
    "Petrov", "Smirnov", "Kuznetsov", "Popov", "Sokolov", "Volkov", "Morozov", "Kovalenko",
    "Shevchenko", "Bondarenko", "Tkachenko", "Nagy", "Kovács", "Tóth", "Szabó", "Varga",
    "Kiss", "Molnár", "Németh", "Farkas", "Balogh", "Popescu", "Ionescu", "Dumitru", "Stoica",
    "Jovanović", "Petrović", "Nikolić", "Marković", "Đorđević", "Kovačević", "Horvat", "Babić",
    "Marić", "Jurić",
    # Greek, Turkish
    "Papadopoulos", "Papadakis", "Georgiou", "Nikolaidis", "Vlachos", "Dimitriou",
    "Oikonomou", "Karagiannis", "Antoniou", "Konstantinidis", "Yılmaz", "Kaya", "Demir",
    "Şahin", "Çelik", "Yıldız", "Yıldırım", "Öztürk", "Aydın", "Özdemir", "Arslan", "Doğan",
    "Kılıç", "Aslan", "Çetin", "Kara", "Koç", "Kurt", "Özkan", "Şimşek",
    # Arabic, Persian, Hebrew
    "Haddad", "Khoury", "Nasser", "Hassan", "Hussein", "Ali", "Mansour", "Saleh", "Aziz",
    "Rahman", "Karimi", "Hosseini", "Ahmadi", "Mohammadi", "Rezaei", "Moradi", "Farouk",
    "Abboud", "Sabbagh", "Darwish", "Al-Sayed", "El-Amin", "Najjar", "Qureshi", "Cohen", "Levi",
    "Mizrahi", "Peretz", "Biton", "Friedman", "Katz", "Goldberg", "Rosenberg", "Shapiro",
    # South Asian
    "Patel", "Sharma", "Singh", "Kumar", "Gupta", "Shah", "Mehta", "Reddy", "Rao", "Iyer",
    "Nair", "Menon", "Pillai", "Joshi", "Desai", "Chatterjee", "Banerjee", "Mukherjee", "Das",
    "Bose", "Kapoor", "Malhotra", "Agarwal", "Chopra", "Verma", "Mishra", "Pandey", "Khan",
    "Siddiqui", "Chaudhry", "Hussain", "Ahmed", "Perera", "Fernando", "Jayawardena",
    "Bhattarai", "Shrestha", "Thapa",
    # Vietnamese, Chinese, Korean, Japanese, Filipino
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
    "Hồ", "Ngô", "Dương", "Lý", "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao",
    "Wu", "Zhou", "Xu", "Sun", "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Luo", "Gao", "Zheng",
    "Liang", "Xie", "Tang", "Song", "Han", "Feng", "Deng", "Cao", "Peng", "Zeng", "Xiao",
    "Tian", "Dong", "Pan", "Yuan", "Cai", "Jiang", "Yu", "Du", "Ye", "Cheng", "Wei", "Su",
    "Ding", "Ren", "Shen", "Yao", "Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon",
    "Jang", "Lim", "Oh", "Seo", "Shin", "Kwon", "Hwang", "Ahn", "Yoo", "Hong", "Satō",
    "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Itō", "Yamamoto", "Nakamura", "Kobayashi",
    "Katō", "Yoshida", "Yamada", "Sasaki", "Yamaguchi", "Matsumoto", "Inoue", "Kimura",
    "Hayashi", "Shimizu", "Yamazaki", "Mori", "Abe", "Ikeda", "Hashimoto", "Ishikawa", "Ogawa",
    "Fujita", "Okada", "Gotō", "Hasegawa", "Bautista", "Ocampo", "Villanueva", "Dela Cruz",
    "Aquino", "Manalo", "Soriano", "Tolentino",
    # African
    "Okafor", "Okonkwo", "Adeyemi", "Adebayo", "Balogun", "Eze", "Nwosu", "Chukwu", "Ibrahim",
    "Abubakar", "Mensah", "Owusu", "Boateng", "Asante", "Osei", "Agyeman", "Kamau", "Mwangi",
    "Otieno", "Wanjiru", "Ochieng", "Kiprop", "Mutua", "Banda", "Phiri", "Dlamini", "Nkosi",
    "Ndlovu", "Khumalo", "Mokoena", "Mahlangu", "Tshabalala", "Diallo", "Traoré", "Diop",
    "Ndiaye", "Sow", "Keïta", "Touré", "Camara", "Tesfaye", "Bekele", "Haile", "Girma",
    "Mengistu", "Abebe",
    # Pacific
    "Kealoha", "Kahananui", "Tuilagi", "Fonoti", "Ngata", "Tupou",
)  # fmt: skip

MALE_GIVEN_NAMES: tuple[str, ...] = (
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas",
    "Charles", "Christopher", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven",
    "Paul", "Andrew", "Joshua", "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald",
    "Edward", "Jason", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan",
    "Stephen", "Larry", "Justin", "Scott", "Brandon", "Benjamin", "Samuel", "Gregory",
    "Alexander", "Patrick", "Frank", "Raymond", "Jack", "Dennis", "Jerry", "Tyler", "Aaron",
    "Henry", "Douglas", "Peter", "Adam", "Nathan", "Zachary", "Walter", "Kyle", "Harold",
    "Carl", "Arthur", "Gerald", "Roger", "Keith", "Lawrence", "Terry", "Albert", "Noah",
    "Liam", "Oliver", "Elijah", "Lucas", "Mason", "Ethan", "Logan", "Owen", "Leo", "Hugo",
    "José", "Luis", "Carlos", "Juan", "Jesús", "Raúl", "Martín", "Ángel", "Andrés", "Iñaki",
    "Sebastián", "Matías", "João", "Gonçalo", "André", "François", "Jérôme", "Joël", "Étienne",
    "Björn", "Jürgen", "Søren", "Lars", "Mikael", "Åke", "Jörg", "Klaus", "Matteo", "Giuseppe",
    "Lorenzo", "Łukasz", "Bartłomiej", "Piotr", "Tomáš", "Jiří", "Zoltán", "Dávid", "Ömer",
    "Mehmet", "Emre", "Yusuf", "Omar", "Ahmed", "Karim", "Tariq", "Reza", "Dariush", "Arjun",
    "Rohan", "Vikram", "Rahul", "Sanjay", "Minh", "Quang", "Dũng", "Wei", "Hao", "Jun",
    "Hiroshi", "Kenji", "Takumi", "Min-jun", "Seo-jun", "Ji-ho", "Chinedu", "Kwame", "Kofi",
    "Tendai", "Sipho", "Tadesse", "Amadou", "Malik", "Darnell", "Andre", "Jamal", "Dmitri",
    "Sergei", "Oleksandr", "Nikolaos", "Ravi",
)  # fmt: skip

FEMALE_GIVEN_NAMES: tuple[str, ...] = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica",
    "Sarah", "Karen", "Nancy", "Lisa", "Betty", "Margaret", "Sandra", "Ashley", "Kimberly",
    "Emily", "Donna", "Michelle", "Dorothy", "Carol", "Amanda", "Melissa", "Deborah",
    "Stephanie", "Rebecca", "Sharon", "Laura", "Cynthia", "Kathleen", "Amy", "Angela",
    "Shirley", "Anna", "Brenda", "Pamela", "Emma", "Nicole", "Helen", "Samantha", "Katherine",
    "Christine", "Debra", "Rachel", "Carolyn", "Janet", "Catherine", "Maria", "Heather",
    "Diane", "Ruth", "Julie", "Olivia", "Joyce", "Virginia", "Victoria", "Kelly", "Lauren",
    "Christina", "Joan", "Evelyn", "Judith", "Megan", "Andrea", "Cheryl", "Hannah", "Jacqueline",
    "Martha", "Gloria", "Teresa", "Ann", "Sara", "Madison", "Frances", "Kathryn", "Janice",
    "Jean", "Abigail", "Alice", "Judy", "Sophia", "Grace", "Denise", "Amber", "Doris",
    "Marilyn", "Danielle", "Beverly", "Isabella", "Theresa", "Diana", "Natalie", "Brittany",
    "Charlotte", "Marie", "Kayla", "Alexis", "Lori", "Ava", "Mia", "Chloé", "Zoë", "Renée",
    "Noémie", "Anaïs", "Hélène", "Inés", "Lucía", "Sofía", "María José", "Beatriz", "Conceição",
    "Ximena", "Valentina", "Camila", "Ingrid", "Åsa", "Sigrid", "Mette", "Birgit", "Jutta",
    "Giulia", "Francesca", "Małgorzata", "Agnieszka", "Zuzana", "Petra", "Réka", "Çağla",
    "Elif", "Zeynep", "Fatima", "Layla", "Yasmin", "Leila", "Shirin", "Priya", "Ananya",
    "Deepa", "Lakshmi", "Thảo", "Ngọc", "Linh", "Mei", "Xiu", "Li Na", "Yuki", "Haruka",
    "Sakura", "Ji-woo", "Seo-yeon", "Ngozi", "Amara", "Abena", "Wanjiku", "Thandiwe", "Aisha",
    "Fatoumata", "Makeda", "Keisha", "Imani", "Olga", "Natalia", "Oksana", "Eleni", "Dimitra",
    "Aroha", "Leilani",
)  # fmt: skip

NEUTRAL_GIVEN_NAMES: tuple[str, ...] = (
    "Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn",
    "Rowan", "Sasha", "Robin", "Charlie", "Sam", "Kai", "Emerson", "Finley", "Hayden",
    "Remy", "Ariel", "Noa", "Yuri", "Dominique", "Eden", "Sky",
)  # fmt: skip

# Names people go by, for a second ``nickname`` HumanName.
NICKNAMES: dict[str, str] = {
    "Robert": "Bob", "William": "Bill", "Richard": "Rick", "Joseph": "Joe", "Thomas": "Tom",
    "Charles": "Charlie", "Christopher": "Chris", "Daniel": "Dan", "Matthew": "Matt",
    "Anthony": "Tony", "Michael": "Mike", "Andrew": "Andy", "Kenneth": "Ken", "Timothy": "Tim",
    "Edward": "Ed", "Jonathan": "Jon", "Nicholas": "Nick", "Benjamin": "Ben", "Samuel": "Sam",
    "Alexander": "Alex", "Patrick": "Pat", "Elizabeth": "Liz", "Margaret": "Peggy",
    "Katherine": "Kate", "Jennifer": "Jen", "Patricia": "Trish", "Rebecca": "Becky",
    "Deborah": "Debbie", "Kimberly": "Kim", "Victoria": "Vicky", "Jacqueline": "Jackie",
    "Christina": "Tina", "Samantha": "Sam", "Abigail": "Abby", "Francesca": "Franca",
    "Małgorzata": "Gosia", "Oleksandr": "Sasha", "Dmitri": "Dima", "Natalia": "Natasha",
    "Giuseppe": "Beppe", "José": "Pepe",
}  # fmt: skip

STREET_NAMES: tuple[str, ...] = (
    "Maple Street", "Oak Avenue", "Cedar Lane", "Elm Street", "Pine Road", "Birch Court",
    "Willow Way", "Chestnut Drive", "Harbor View Road", "Mill Pond Lane", "Orchard Street",
    "Riverside Drive", "Lakeshore Boulevard", "Hillcrest Avenue", "Sunset Terrace",
    "Meadow Lane", "Church Street", "High Street", "Station Road", "Park Avenue",
    "Garden Court", "Spring Street", "Forest Hills Drive", "Beacon Street", "Prospect Place",
    "Water Street", "Union Square", "Market Street", "Bridge Road", "Ashford Close",
)  # fmt: skip

# (city, state, ZIP prefix): invented places in real states, so addresses look ordinary.
CITIES: tuple[tuple[str, str, str], ...] = (
    ("Springfield", "MA", "011"), ("Riverton", "MA", "012"), ("Lakeside", "WA", "980"),
    ("Fairview", "OR", "970"), ("Cedar Falls", "IA", "506"), ("Brookhaven", "GA", "303"),
    ("Millbrook", "NY", "125"), ("Oakridge", "TN", "378"), ("Harborview", "CA", "940"),
    ("Pine Bluff", "AR", "716"), ("Westfield", "NJ", "070"), ("Greenville", "SC", "296"),
    ("Marion", "OH", "433"), ("Clayton", "MO", "631"), ("Ashland", "KY", "411"),
    ("Franklin", "TN", "370"), ("Georgetown", "TX", "786"), ("Salem", "OR", "973"),
)  # fmt: skip
